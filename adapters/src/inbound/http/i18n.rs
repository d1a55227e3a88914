//! The pages' languages: English and Simplified Chinese (the people who sign
//! in are DingTalk users), chosen per request and the strings in each.
//!
//! Choice, first match wins: a `?lang=` parameter, the `dingbridge_lang`
//! cookie (set by the page's language switch), `Accept-Language` (q-values
//! respected; any `zh` tag → Chinese), else English.

use salvo::prelude::*;

/// The page-language cookie (`en` or `zh-CN`; not HttpOnly, SameSite=Lax, Path=/).
pub const LANG_COOKIE: &str = "dingbridge_lang";
/// The query parameter that switches the language (and sets [`LANG_COOKIE`]).
pub const LANG_PARAM: &str = "lang";

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Simplified Chinese.
    ZhCn,
}

impl Lang {
    /// Both languages, in the order the switch lists them.
    pub const ALL: [Lang; 2] = [Lang::ZhCn, Lang::En];

    /// The BCP 47 tag (`<html lang>`, `Content-Language`, the cookie value).
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }

    /// The language's own name, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::ZhCn => "中文",
        }
    }

    /// A language tag as sent in `?lang=`, the cookie or `Accept-Language`:
    /// `en`/`en-*` → English, `zh`/`zh-*` (zh-CN, zh-Hans, …) → Chinese; others: none.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("zh") {
            Some(Self::ZhCn)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Self::En)
        } else {
            None
        }
    }

    /// The most preferred supported language of an `Accept-Language` value
    /// (q=0 means "not this one"), if any.
    pub fn from_accept_language(header: &str) -> Option<Self> {
        accept_language::parse_with_quality(header)
            .into_iter()
            .filter(|(_, quality)| *quality > 0.0)
            .find_map(|(tag, _)| Self::from_tag(&tag))
    }

    /// The request's language: `?lang=`, then the cookie, then `Accept-Language`, else English.
    pub fn of_request(req: &Request) -> Self {
        req.query::<String>(LANG_PARAM)
            .and_then(|l| Self::from_tag(&l))
            .or_else(|| req.cookie(LANG_COOKIE).and_then(|c| Self::from_tag(c.value())))
            .or_else(|| req.header::<String>("accept-language").and_then(|h| Self::from_accept_language(&h)))
            .unwrap_or_default()
    }

    /// The string table of the language.
    pub fn strings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::En => EN,
            Self::ZhCn => ZH_CN,
        }
    }

    /// One string by key; the English one when missing (a test keeps the tables in step).
    pub fn text(self, key: &str) -> &'static str {
        let find =
            |table: &'static [(&'static str, &'static str)]| table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        find(self.strings()).or_else(|| find(EN)).unwrap_or_default()
    }
}

/// The error-page sentence for an error `code` (known codes; others get a generic one).
pub fn error_sentence(lang: Lang, code: &str) -> &'static str {
    let key = match code {
        "invalid_login_state"
        | "not_member"
        | "inactive_member"
        | "consent_denied"
        | "unavailable"
        | "upstream_refused"
        | "internal"
        | "invalid_code"
        | "provider_unavailable" => code,
        _ => "other",
    };
    lang.text(&format!("error.{key}"))
}

/// The HTTP status an error page for a known `code` is served with when it is shown again in
/// another language (`/?error=code&lang=…`); `None` for codes the pages do not know.
pub fn error_status(code: &str) -> Option<StatusCode> {
    Some(match code {
        "invalid_login_state" | "invalid_code" => StatusCode::BAD_REQUEST,
        "not_member" | "inactive_member" | "consent_denied" => StatusCode::FORBIDDEN,
        "internal" => StatusCode::INTERNAL_SERVER_ERROR,
        "upstream_refused" | "provider_unavailable" => StatusCode::BAD_GATEWAY,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => return None,
    })
}

/// English. Keys: `index.*` the index page's static text, `js.*` the index script's messages
/// (`{name}` placeholders), `error.*` the error page.
const EN: &[(&str, &str)] = &[
    ("index.title", "dingbridge"),
    ("index.lang_switch", "Language"),
    ("index.checking", "Checking your session…"),
    (
        "index.signed_out_intro",
        "Sign in with your organization's DingTalk (钉钉) or Feishu (飞书) account. Only members of the organization can sign in.",
    ),
    ("index.sign_in", "Continue with DingTalk"),
    ("index.sign_in_feishu", "Continue with Feishu"),
    ("index.profile", "Your profile"),
    ("index.avatar_alt", "Profile picture"),
    ("index.corp_id", "Organization ID"),
    ("index.union_id", "Account ID (union id)"),
    ("index.userid", "Member ID in the organization"),
    ("index.title_field", "Job title"),
    ("index.email", "Email"),
    ("index.departments", "Department IDs"),
    ("index.send_heading", "Send yourself a work notification"),
    ("index.text_label", "Message"),
    ("index.default_text", "Hello from dingbridge"),
    ("index.send", "Send"),
    ("index.sign_out", "Sign out"),
    ("js.signed_in", "You are signed in."),
    ("js.signed_out", "You are not signed in."),
    ("js.session_ended", "Your session has ended. Please sign in again."),
    ("js.session_failed", "Your session could not be checked (HTTP {status}). Please try again shortly."),
    ("js.offline", "The server could not be reached. Check your connection and try again."),
    ("js.none", "—"),
    (
        "js.count",
        "{used} of {max} bytes used (UTF-8). A Chinese character takes 3 bytes, so about {cjk} Chinese characters fit.",
    ),
    ("js.too_long", "The message is too long: {used} bytes, at most {max} fit in one notification. Please shorten it."),
    ("js.empty", "Please write a message first (spaces alone do not count)."),
    ("js.sending", "Sending…"),
    ("js.sent", "Sent. DingTalk will deliver the notification to you shortly."),
    ("js.reference", "Reference: {id}"),
    ("js.unavailable", "The service is temporarily unavailable. Please try again in a moment."),
    ("js.send_failed", "The message could not be sent (error {code}). Please try again."),
    ("error.page_title", "Sign-in did not complete"),
    ("error.heading", "Sign-in did not complete"),
    ("error.code", "Error code:"),
    ("error.request_id", "Request ID:"),
    ("error.detail", "Details:"),
    ("error.back", "Back to the start page"),
    ("error.invalid_login_state", "This sign-in has expired or was already used. Please start the sign-in again."),
    (
        "error.not_member",
        "Your account is not a member of an organization this service serves. If you think this is wrong, ask your organization's administrator.",
    ),
    (
        "error.inactive_member",
        "Your organization has marked your account as inactive, so you cannot sign in. Please ask your organization's administrator.",
    ),
    (
        "error.consent_denied",
        "You declined the authorization, so you were not signed in. To sign in, start again and allow access.",
    ),
    (
        "error.unavailable",
        "The service or the sign-in provider cannot be reached right now. Please try again in a few minutes.",
    ),
    (
        "error.upstream_refused",
        "The sign-in service refused this sign-in. This is a configuration problem: please tell your administrator.",
    ),
    (
        "error.internal",
        "Something went wrong on our side. Please try again; if it keeps happening, tell your administrator.",
    ),
    ("error.invalid_code", "The sign-in provider did not accept this sign-in. Please start the sign-in again."),
    ("error.provider_unavailable", "The sign-in provider could not be reached. Please try again in a moment."),
    (
        "error.other",
        "The sign-in could not be completed. Please start again; if it keeps failing, tell your administrator the error code below.",
    ),
];

/// Simplified Chinese; the same keys as [`EN`].
const ZH_CN: &[(&str, &str)] = &[
    ("index.title", "dingbridge"),
    ("index.lang_switch", "语言"),
    ("index.checking", "正在检查登录状态…"),
    ("index.signed_out_intro", "请使用本组织的钉钉或飞书账号登录。只有本组织的成员可以登录。"),
    ("index.sign_in", "使用钉钉登录"),
    ("index.sign_in_feishu", "使用飞书登录"),
    ("index.profile", "您的资料"),
    ("index.avatar_alt", "头像"),
    ("index.corp_id", "组织 ID"),
    ("index.union_id", "账号 ID（union id）"),
    ("index.userid", "组织内成员 ID"),
    ("index.title_field", "职位"),
    ("index.email", "邮箱"),
    ("index.departments", "部门 ID"),
    ("index.send_heading", "给自己发送一条工作通知"),
    ("index.text_label", "消息内容"),
    ("index.default_text", "来自 dingbridge 的问候"),
    ("index.send", "发送"),
    ("index.sign_out", "退出登录"),
    ("js.signed_in", "您已登录。"),
    ("js.signed_out", "您尚未登录。"),
    ("js.session_ended", "您的登录已失效，请重新登录。"),
    ("js.session_failed", "无法检查登录状态（HTTP {status}），请稍后重试。"),
    ("js.offline", "无法连接服务器，请检查网络后重试。"),
    ("js.none", "—"),
    ("js.count", "已用 {used} / {max} 字节（UTF-8）。一个汉字占 3 字节，约可写 {cjk} 个汉字。"),
    ("js.too_long", "消息过长：{used} 字节，一条通知最多 {max} 字节，请删减。"),
    ("js.empty", "请先输入消息内容（只有空格不算）。"),
    ("js.sending", "正在发送…"),
    ("js.sent", "已发送，钉钉将很快把通知送达给您。"),
    ("js.reference", "编号：{id}"),
    ("js.unavailable", "服务暂时不可用，请稍后重试。"),
    ("js.send_failed", "消息发送失败（错误 {code}），请重试。"),
    ("error.page_title", "登录未完成"),
    ("error.heading", "登录未完成"),
    ("error.code", "错误代码："),
    ("error.request_id", "请求 ID："),
    ("error.detail", "详细信息："),
    ("error.back", "返回首页"),
    ("error.invalid_login_state", "此登录请求已过期或已被使用，请重新登录。"),
    ("error.not_member", "您的账号不属于本服务所服务的组织。如有疑问，请联系您所在组织的管理员。"),
    ("error.inactive_member", "您所在的组织已将您的账号标记为停用，因此无法登录。请联系组织管理员。"),
    ("error.consent_denied", "您拒绝了授权，因此未能登录。如需登录，请重新开始并同意授权。"),
    ("error.unavailable", "服务或登录服务商暂时无法访问，请几分钟后重试。"),
    ("error.upstream_refused", "登录服务拒绝了此次登录。这是配置问题，请告知管理员。"),
    ("error.internal", "服务内部出错。请重试；如果问题持续出现，请告知管理员。"),
    ("error.invalid_code", "登录服务商未接受此次登录，请重新登录。"),
    ("error.provider_unavailable", "暂时无法连接登录服务商，请稍后重试。"),
    ("error.other", "登录未能完成。请重新开始；如果仍然失败，请将下方的错误代码告知管理员。"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_have_the_same_keys() {
        let keys = |table: &'static [(&'static str, &'static str)]| {
            let mut keys: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(keys(EN), keys(ZH_CN));
        let mut unique = keys(EN);
        unique.dedup();
        assert_eq!(unique.len(), EN.len(), "duplicate keys");
    }

    #[test]
    fn accept_language_respects_q_values() {
        let pick = Lang::from_accept_language;
        assert_eq!(pick("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::ZhCn));
        assert_eq!(pick("en-US,en;q=0.9,zh-CN;q=0.8"), Some(Lang::En));
        assert_eq!(pick("en;q=0.5, zh-Hans;q=0.9"), Some(Lang::ZhCn));
        assert_eq!(pick("zh"), Some(Lang::ZhCn));
        assert_eq!(pick("fr-FR, de;q=0.9, zh-TW;q=0.3"), Some(Lang::ZhCn));
        assert_eq!(pick("zh;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(pick("fr, de"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("*"), None);
    }

    #[test]
    fn tags_map_to_languages() {
        assert_eq!(Lang::from_tag("zh-CN"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_tag("ZH_hans"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_tag("en-GB"), Some(Lang::En));
        assert_eq!(Lang::from_tag("<script>"), None);
        assert_eq!(Lang::from_tag(""), None);
    }

    #[test]
    fn every_known_code_has_its_own_sentence() {
        for code in [
            "invalid_login_state",
            "not_member",
            "inactive_member",
            "consent_denied",
            "unavailable",
            "upstream_refused",
            "internal",
            "invalid_code",
            "provider_unavailable",
        ] {
            for lang in Lang::ALL {
                assert_ne!(error_sentence(lang, code), error_sentence(lang, "whatever"), "{code}");
                assert!(!error_sentence(lang, code).is_empty());
            }
            assert!(error_status(code).is_some(), "{code}");
        }
        assert_eq!(error_status("<b>"), None);
    }
}
