//! The two HTML pages: the sandbox/index page and the error page.

use salvo::prelude::*;

use super::error::ApiError;

/// The index page. Static: it reads `/api/me` with `fetch` and fills the
/// profile with `textContent`, so no server-side templating or escaping.
pub const INDEX_HTML: &str = include_str!("index.html");

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Renders `error` as an HTML page with its status, code and message, and a
/// link to start over.
pub fn render_error(res: &mut Response, error: &ApiError) {
    res.status_code(error.status);
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed · dingbridge</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2329}}
code{{background:#f2f3f5;padding:.1rem .3rem;border-radius:4px}}a.button{{display:inline-block;margin-top:1rem;padding:.6rem 1rem;background:#0089ff;color:#fff;border-radius:6px;text-decoration:none}}</style>
</head><body>
<h1>Sign-in did not complete</h1>
<p id="message">{message}</p>
<p>Error code: <code id="code">{code}</code> (HTTP {status})</p>
<a class="button" href="/">Back to start</a>
</body></html>"#,
        message = escape(&error.body.message),
        code = escape(&error.body.code),
        status = error.status.as_u16(),
    );
    res.render(Text::Html(html));
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
