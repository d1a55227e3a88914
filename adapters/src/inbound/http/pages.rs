//! The two HTML pages, the sandbox/index page and the error page, in English
//! and Chinese ([`i18n`](super::i18n)), each sent with security headers: a
//! Content-Security-Policy that allows only the pages' own inline script and
//! style (by SHA-256 hash), no framing, no sniffing, no referrer.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::ValidationError;
use html_escape::encode_quoted_attribute as escape;
use salvo::http::cookie::time::Duration as CookieDuration;
use salvo::http::cookie::{Cookie, SameSite};
use salvo::http::header::{self, HeaderValue};
use salvo::prelude::*;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::i18n::{LANG_COOKIE, LANG_PARAM, Lang, error_sentence, error_status};
use super::middleware::{REQUEST_ID_HEADER, usable_request_id};

/// The query parameter carrying the failed request's id when an error page is shown again.
const REQUEST_ID_PARAM: &str = "request_id";

/// The index page template: `{{key}}` is a string of the page's language (keys with a dot) or one
/// of the values [`render_index`] fills in.
const INDEX_TEMPLATE: &str = include_str!("index.html");
/// The index page's script (inlined; allowed by its hash).
const INDEX_JS: &str = include_str!("index.js");
/// The pages' stylesheet (inlined; allowed by its hash).
const PAGES_CSS: &str = include_str!("pages.css");
/// Most characters `POST /api/me/messages` takes in `text` (`SelfMessageInput`).
const MAX_TEXT_CHARS: usize = 2000;

fn csp_hash(source: &str) -> String {
    format!("'sha256-{}'", STANDARD.encode(Sha256::digest(source.as_bytes())))
}

/// The index page's policy: its own script and style only, API calls to this origin, avatars from
/// DingTalk's CDNs (any https), forms only to this origin, never framed.
static INDEX_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' https: data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        csp_hash(INDEX_JS),
        csp_hash(PAGES_CSS)
    )
});

/// The error page's policy: no script at all.
static ERROR_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; img-src 'self' https: data:; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'",
        csp_hash(PAGES_CSS)
    )
});

/// Bytes the text of a text notification may take: the smallest provider limit on the whole body
/// (DingTalk's 2048 bytes, `outbound::dingtalk::body::MAX_MSG_BYTES`) less the JSON around the
/// text (`{"msgtype":"text","text":{"content":""}}`), so the page's text goes to any tenant.
pub fn max_text_bytes() -> usize {
    let envelope = serde_json::json!({"msgtype": "text", "text": {"content": ""}}).to_string().len();
    crate::outbound::dingtalk::body::MAX_MSG_BYTES.saturating_sub(envelope)
}

/// Bytes `text` takes inside that JSON (escapes included), as [`max_text_bytes`] counts them.
fn text_bytes(text: &str) -> usize {
    serde_json::Value::from(text).to_string().len().saturating_sub(2)
}

/// `POST /api/me/messages`: the text body of `text`, at most [`max_text_bytes`] so it goes to a
/// member of any provider. Errors: those of [`self_message_error`].
pub fn self_message_body(text: &str) -> Result<domain::MessageBody, ApiError> {
    let body = domain::MessageBody::text(text).map_err(|e| self_message_error(text, e))?;
    if text_bytes(text) > max_text_bytes() {
        let err = ValidationError::new("body", "too_large", "over the smallest provider's limit");
        return Err(self_message_error(text, err));
    }
    Ok(body)
}

/// The error for the text body restated for the sandbox page's person, on the field they typed
/// (`text`): `required` (empty or only whitespace) and `too_large` (over [`max_text_bytes`],
/// counted in UTF-8 bytes).
pub fn self_message_error(text: &str, err: ValidationError) -> ApiError {
    let problem = match err.code {
        "required" => {
            Some(("required", "the message is empty: write some text (whitespace alone does not count)".to_owned()))
        }
        "too_large" | "too_long" => Some((
            "too_large",
            format!(
                "the message is {} bytes in UTF-8; a text notification takes at most {} (a Chinese character takes 3 bytes)",
                text_bytes(text),
                max_text_bytes()
            ),
        )),
        _ => None,
    };
    match problem {
        Some((code, message)) => ApiError::fields(vec![("text".to_owned(), code.to_owned(), message)]),
        None => ApiError::validation(&err.under("text")),
    }
}

fn set_header(res: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, value);
    }
}

/// Security and language headers of every page.
fn page_headers(res: &mut Response, csp: &str, lang: Lang) {
    set_header(res, header::CONTENT_SECURITY_POLICY, csp);
    set_header(res, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_header(res, header::X_FRAME_OPTIONS, "DENY");
    set_header(res, header::REFERRER_POLICY, "no-referrer");
    set_header(res, header::CONTENT_LANGUAGE, lang.tag());
    set_header(res, header::VARY, "Accept-Language, Cookie");
}

/// The language switch: a link per language to `href(lang)`, the current one marked.
fn lang_switch(current: Lang, href: impl Fn(Lang) -> String) -> String {
    let links: String = Lang::ALL
        .iter()
        .map(|&lang| {
            let current = if lang == current { r#" aria-current="true""# } else { "" };
            format!(
                r#"<a href="{}" hreflang="{tag}" lang="{tag}"{current}>{}</a>"#,
                escape(&href(lang)),
                lang.name(),
                tag = lang.tag()
            )
        })
        .collect();
    format!(r#"<nav class="lang" aria-label="{}">{links}</nav>"#, escape(current.text("index.lang_switch")))
}

/// The strings the index script needs, as JSON safe inside `<script type="application/json">`.
fn script_strings(lang: Lang) -> String {
    let map: serde_json::Map<String, serde_json::Value> = lang
        .strings()
        .iter()
        .filter(|(key, _)| key.starts_with("js."))
        .map(|(key, value)| ((*key).to_owned(), serde_json::Value::from(*value)))
        .collect();
    // `<` only occurs inside JSON strings, where \u003c means the same: no `</script>` possible.
    serde_json::Value::Object(map).to_string().replace('<', "\\u003c")
}

/// Fills `{{key}}` in one pass (inserted values are not scanned again).
fn fill(template: &str, value: impl Fn(&str) -> Option<Cow<'static, str>>) -> String {
    let mut out = String::with_capacity(template.len() + INDEX_JS.len() + PAGES_CSS.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| value(&after[..end]).map(|v| (end, v))) {
            Some((end, v)) => {
                out.push_str(&v);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One "Continue with …" button per offered provider (`/auth/{provider}/login`), in order; the
/// first is `#login`. A provider without its own label is named by its key.
fn sign_in_buttons(lang: Lang, providers: &[&str]) -> String {
    providers
        .iter()
        .enumerate()
        .map(|(i, provider)| {
            let id = if i == 0 { "login".to_owned() } else { format!("login-{provider}") };
            let label = match *provider {
                "dingtalk" => escape(lang.text("index.sign_in")).into_owned(),
                "feishu" => escape(lang.text("index.sign_in_feishu")).into_owned(),
                other => escape(other).into_owned(),
            };
            format!(r#"<a id="{id}" class="button" href="/auth/{provider}/login?return_to=/">{label}</a>"#)
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// The index page's HTML in `lang`, with a sign-in button for each of `providers`.
fn index_html(lang: Lang, providers: &[&str]) -> String {
    fill(INDEX_TEMPLATE, |key| {
        Some(match key {
            "sign_in_buttons" => Cow::Owned(sign_in_buttons(lang, providers)),
            "lang" => Cow::Borrowed(lang.tag()),
            "style" => Cow::Borrowed(PAGES_CSS),
            "script" => Cow::Borrowed(INDEX_JS),
            "strings_json" => Cow::Owned(script_strings(lang)),
            "lang_switch" => Cow::Owned(lang_switch(lang, |l| format!("/?{LANG_PARAM}={}", l.tag()))),
            "max_bytes" => Cow::Owned(max_text_bytes().to_string()),
            "max_chars" => Cow::Owned(MAX_TEXT_CHARS.to_string()),
            text if text.contains('.') => Cow::Owned(escape(lang.text(text)).into_owned()),
            _ => return None,
        })
    })
}

/// `GET /`: the index page in the request's language. `?lang=` also remembers the choice in the
/// language cookie (`Secure` when `secure_cookie`); `?error=<known code>` shows that error page
/// again (the error page's language switch links there, so that switching does not repeat the
/// sign-in step that failed). The page offers a sign-in button for each of `providers`.
pub fn serve_index(req: &Request, res: &mut Response, secure_cookie: bool, providers: &[&str]) {
    let lang = Lang::of_request(req);
    if req.query::<String>(LANG_PARAM).is_some_and(|l| Lang::from_tag(&l).is_some()) {
        res.add_cookie(
            Cookie::build((LANG_COOKIE, lang.tag()))
                .path("/")
                .same_site(SameSite::Lax)
                .secure(secure_cookie)
                .max_age(CookieDuration::days(365))
                .build(),
        );
    }
    if let Some((code, status)) = req.query::<String>("error").and_then(|c| error_status(&c).map(|s| (c, s))) {
        let request_id = req.query::<String>(REQUEST_ID_PARAM).filter(|id| usable_request_id(id));
        return error_page(res, lang, status, &code, None, request_id);
    }
    page_headers(res, &INDEX_CSP, lang);
    res.render(Text::Html(index_html(lang, providers)));
}

/// Renders `error` as an HTML page in the request's language (negotiated by
/// [`page_language`](super::middleware::page_language)): a sentence for its code, the code itself,
/// the request id, and a link to start over.
pub fn render_error(res: &mut Response, error: &ApiError) {
    let lang = res.extensions.get::<Lang>().copied().unwrap_or_default();
    let known = error_status(&error.body.code).is_some();
    let detail = (!known && !error.status.is_server_error()).then_some(error.body.message.as_str());
    let request_id = res.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    error_page(res, lang, error.status, &error.body.code, detail, request_id);
}

fn error_page(
    res: &mut Response,
    lang: Lang,
    status: StatusCode,
    code: &str,
    detail: Option<&str>,
    request_id: Option<String>,
) {
    let t = |key: &str| escape(lang.text(key));
    // Known codes are shown again in the other language (with the failed request's id); others
    // switch on the start page.
    let known = error_status(code).is_some();
    let switch = lang_switch(lang, |l| match (known, &request_id) {
        (true, Some(id)) => format!("/?{LANG_PARAM}={}&error={code}&{REQUEST_ID_PARAM}={id}", l.tag()),
        (true, None) => format!("/?{LANG_PARAM}={}&error={code}", l.tag()),
        (false, _) => format!("/?{LANG_PARAM}={}", l.tag()),
    });
    let detail = detail
        .map(|d| format!(r#"<p class="muted">{} <span id="detail">{}</span></p>"#, t("error.detail"), escape(d)))
        .unwrap_or_default();
    let request_id = request_id
        .map(|id| format!(r#"<br>{} <code id="request-id">{}</code>"#, t("error.request_id"), escape(&id)))
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title} · dingbridge</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style>
</head><body>
<header><h1>{heading}</h1>{switch}</header>
<p id="message">{message}</p>
{detail}<p class="muted">{code_label} <code id="code">{code}</code>{request_id}</p>
<a class="button" href="/">{back}</a>
</body></html>"#,
        lang = lang.tag(),
        title = t("error.page_title"),
        style = PAGES_CSS,
        heading = t("error.heading"),
        message = escape(error_sentence(lang, code)),
        code_label = t("error.code"),
        code = escape(code),
        back = t("error.back"),
    );
    res.status_code(status);
    page_headers(res, &ERROR_CSP, lang);
    res.render(Text::Html(html));
}

#[cfg(test)]
mod tests {
    use salvo::test::{ResponseExt, TestClient};

    use super::*;

    #[handler]
    async fn index(req: &mut Request, res: &mut Response) {
        serve_index(req, res, false, &["dingtalk", "feishu"]);
    }

    #[handler]
    async fn failing(req: &mut Request, res: &mut Response) {
        let code = req.query::<String>("code").unwrap_or_default();
        let message = req.query::<String>("message").unwrap_or_default();
        render_error(res, &ApiError::new(StatusCode::FORBIDDEN, &code, message));
    }

    fn service() -> Service {
        Service::new(
            Router::new()
                .hoop(super::super::middleware::request_id)
                .hoop(super::super::middleware::page_language)
                .get(index)
                .push(Router::with_path("fail").get(failing)),
        )
    }

    fn header<'a>(res: &'a Response, name: &str) -> &'a str {
        res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn assert_security_headers(res: &Response) {
        let csp = header(res, "content-security-policy");
        for directive in ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header(res, "x-content-type-options"), "nosniff");
        assert_eq!(header(res, "x-frame-options"), "DENY");
        assert_eq!(header(res, "referrer-policy"), "no-referrer");
        assert_eq!(header(res, "vary"), "Accept-Language, Cookie");
    }

    #[tokio::test]
    async fn index_sends_security_headers_and_its_hashes() {
        let mut res = TestClient::get("http://127.0.0.1/").send(&service()).await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        assert_security_headers(&res);
        let csp = header(&res, "content-security-policy").to_owned();
        assert!(csp.contains("connect-src 'self'") && csp.contains("img-src 'self' https: data:"), "{csp}");
        let body = res.take_string().await.unwrap_or_default();
        // The inline script and style are byte for byte what the hashes cover.
        assert!(body.contains(&format!("<script>{INDEX_JS}</script>")));
        assert!(body.contains(&format!("<style>{PAGES_CSS}</style>")));
        assert!(csp.contains(&format!("script-src {}", csp_hash(INDEX_JS))), "{csp}");
        assert!(csp.contains(&format!("style-src {}", csp_hash(PAGES_CSS))), "{csp}");
        assert!(!body.contains("{{"), "unfilled placeholder");
        assert!(body.contains(&format!(r#"data-max-bytes="{}""#, max_text_bytes())));
    }

    #[tokio::test]
    async fn error_page_sends_security_headers_and_no_script() {
        let res = TestClient::get("http://127.0.0.1/fail?code=not_member").send(&service()).await;
        assert_eq!(res.status_code, Some(StatusCode::FORBIDDEN));
        assert_security_headers(&res);
        let csp = header(&res, "content-security-policy");
        assert!(!csp.contains("script-src"), "{csp}");
    }

    #[tokio::test]
    async fn default_language_is_english() {
        let mut res = TestClient::get("http://127.0.0.1/").send(&service()).await;
        assert_eq!(header(&res, "content-language"), "en");
        let body = res.take_string().await.unwrap_or_default();
        assert!(body.contains(r#"<html lang="en">"#));
        assert!(
            body.contains(
                r#"<a id="login" class="button" href="/auth/dingtalk/login?return_to=/">Continue with DingTalk</a>"#
            ),
            "{body}"
        );
        assert!(
            body.contains(
                r#"<a id="login-feishu" class="button" href="/auth/feishu/login?return_to=/">Continue with Feishu</a>"#
            ),
            "{body}"
        );
        assert!(body.contains(r#"href="/?lang=zh-CN""#), "language switch");
    }

    #[tokio::test]
    async fn accept_language_chinese_gives_the_chinese_page() {
        let mut res = TestClient::get("http://127.0.0.1/")
            .add_header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8", true)
            .send(&service())
            .await;
        assert_eq!(header(&res, "content-language"), "zh-CN");
        let body = res.take_string().await.unwrap_or_default();
        assert!(body.contains(r#"<html lang="zh-CN">"#));
        assert!(body.contains("使用钉钉登录"));
        assert!(body.contains("您已登录"), "script strings in Chinese");
        assert!(res.headers().get("set-cookie").is_none(), "negotiation alone sets no cookie");

        let res = TestClient::get("http://127.0.0.1/")
            .add_header("accept-language", "en-US;q=0.4, zh-Hans;q=0.7", true)
            .send(&service())
            .await;
        assert_eq!(header(&res, "content-language"), "zh-CN");
    }

    #[tokio::test]
    async fn the_cookie_and_the_parameter_beat_accept_language() {
        let res = TestClient::get("http://127.0.0.1/")
            .add_header("accept-language", "zh-CN", true)
            .add_header("cookie", "dingbridge_lang=en", true)
            .send(&service())
            .await;
        assert_eq!(header(&res, "content-language"), "en");

        let res = TestClient::get("http://127.0.0.1/?lang=zh-CN")
            .add_header("accept-language", "en", true)
            .add_header("cookie", "dingbridge_lang=en", true)
            .send(&service())
            .await;
        assert_eq!(header(&res, "content-language"), "zh-CN");
        let cookie = header(&res, "set-cookie");
        assert!(cookie.starts_with("dingbridge_lang=zh-CN"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");

        let res = TestClient::get("http://127.0.0.1/?lang=klingon").send(&service()).await;
        assert_eq!(header(&res, "content-language"), "en");
        assert!(res.headers().get("set-cookie").is_none());
    }

    #[tokio::test]
    async fn error_pages_speak_the_request_language_and_keep_the_code() {
        let mut res = TestClient::get("http://127.0.0.1/fail?code=consent_denied")
            .add_header("accept-language", "zh", true)
            .add_header("x-request-id", "req-42", true)
            .send(&service())
            .await;
        assert_eq!(header(&res, "content-language"), "zh-CN");
        let body = res.take_string().await.unwrap_or_default();
        assert!(body.contains(error_sentence(Lang::ZhCn, "consent_denied")));
        assert!(body.contains(r#"<code id="code">consent_denied</code>"#));
        assert!(body.contains(r#"<code id="request-id">req-42</code>"#));
        assert!(
            body.contains(r#"href="/?lang=en&amp;error=consent_denied&amp;request_id=req-42""#),
            "the switch keeps the error: {body}"
        );

        let mut res =
            TestClient::get("http://127.0.0.1/?lang=en&error=consent_denied&request_id=req-42").send(&service()).await;
        assert_eq!(res.status_code, Some(StatusCode::FORBIDDEN));
        assert_eq!(header(&res, "content-language"), "en");
        let body = res.take_string().await.unwrap_or_default();
        assert!(body.contains(error_sentence(Lang::En, "consent_denied")));
        assert!(body.contains(r#"<code id="code">consent_denied</code>"#));
        assert!(body.contains(r#"<code id="request-id">req-42</code>"#));

        // A request id that is not one is not shown.
        let mut res = TestClient::get("http://127.0.0.1/?error=not_member&request_id=%3Cb%3E").send(&service()).await;
        let body = res.take_string().await.unwrap_or_default();
        assert!(!body.contains("request-id") && !body.contains("&lt;b"), "{body}");

        // Unknown codes in `?error=` are not shown (only the index page).
        let res = TestClient::get("http://127.0.0.1/?error=%3Cb%3E").send(&service()).await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
    }

    #[tokio::test]
    async fn error_page_escapes_what_it_shows() {
        let mut res = TestClient::get(
            "http://127.0.0.1/fail?code=%3Cscript%3Ex%3C%2Fscript%3E&message=%3Cimg%20src%3Dx%20onerror%3D%22a()%22%3E%20%26",
        )
        .send(&service())
        .await;
        let body = res.take_string().await.unwrap_or_default();
        assert!(!body.contains("<script>x"), "{body}");
        assert!(!body.contains("<img src"), "{body}");
        assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");
        assert!(body.contains("&lt;img src=x onerror=&quot;a()&quot;&gt; &amp;"), "{body}");
        assert!(body.contains(error_sentence(Lang::En, "other")));
    }

    #[test]
    fn script_strings_cannot_close_the_data_block() {
        assert!(!script_strings(Lang::En).contains('<'));
        let parsed: serde_json::Value = serde_json::from_str(&script_strings(Lang::ZhCn)).unwrap_or_default();
        assert_eq!(parsed["js.sending"], "正在发送…");
    }

    #[test]
    fn fill_is_one_pass_and_leaves_unknown_keys() {
        let out = fill("a {{x}} {{nope}} {{y", |k| (k == "x").then_some(Cow::Borrowed("{{x}}")));
        assert_eq!(out, "a {{x}} {{nope}} {{y");
    }

    #[test]
    fn text_limit_is_dingtalks_msg_limit_less_the_envelope() {
        assert_eq!(max_text_bytes(), crate::outbound::dingtalk::body::MAX_MSG_BYTES - 40);
        let fits = "钉".repeat(max_text_bytes() / 3);
        assert!(self_message_body(&fits).is_ok());
        let too_many = "钉".repeat(max_text_bytes() / 3 + 1);
        assert!(self_message_body(&too_many).is_err());
        assert_eq!(text_bytes("a\n\"钉"), 1 + 2 + 2 + 3);
    }

    #[test]
    fn self_message_errors_name_the_text_field() {
        let body = self_message_body("  \n ").err().map(|e| e.body);
        assert_eq!(body.as_ref().and_then(|b| b.fields.get("text")).map(|f| f.code.as_str()), Some("required"));
        let long = "钉".repeat(700);
        let body = self_message_body(&long).err().map(|e| e.body);
        let field = body.as_ref().and_then(|b| b.fields.get("text"));
        assert_eq!(field.map(|f| f.code.as_str()), Some("too_large"));
        assert!(field.is_some_and(|f| f.message.contains("2100 bytes")), "{field:?}");
    }
}
