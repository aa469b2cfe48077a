//! The authorization server's pages, server-rendered in Chinese and English: sign-in, consent, and
//! errors. No script: a form and its buttons are all a member needs, and a page with no script has
//! nothing for an injected one to piggyback on (the CSP forbids scripts anyway).

use http::HeaderMap;

use crate::services::oauth::{AuthRequest, Checked, Problem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `ui_locales` first (OpenID Connect's parameter, space-separated preferences), then the
    /// browser's `Accept-Language`; Chinese when neither says.
    pub fn choose(ui_locales: Option<&str>, headers: &HeaderMap) -> Lang {
        let accept = headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let preferences = ui_locales
            .unwrap_or_default()
            .split(' ')
            .chain(accept.split(',').map(|p| p.split(';').next().unwrap_or_default()))
            .map(|tag| tag.trim().to_ascii_lowercase());
        for tag in preferences {
            if tag == "zh" || tag.starts_with("zh-") {
                return Lang::Zh;
            }
            if tag == "en" || tag.starts_with("en-") {
                return Lang::En;
            }
        }
        Lang::Zh
    }

    fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    fn zh(self) -> bool {
        self == Lang::Zh
    }
}

/// Every sentence the pages show besides the app's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Repeated,
    Forged,
    NoDecision,
    TooMany,
    WrongPassword,
    Locked,
    NoClient,
    UnknownApp,
    UnregisteredRedirect,
    NoRedirect,
}

impl From<Problem> for Text {
    fn from(p: Problem) -> Text {
        match p {
            Problem::NoClient => Text::NoClient,
            Problem::UnknownApp => Text::UnknownApp,
            Problem::UnregisteredRedirect => Text::UnregisteredRedirect,
            Problem::NoRedirect => Text::NoRedirect,
        }
    }
}

impl Text {
    fn say(self, lang: Lang) -> &'static str {
        match (self, lang.zh()) {
            (Text::Repeated, false) => "The request repeats a parameter.",
            (Text::Repeated, true) => "请求中有重复的参数。",
            (Text::Forged, false) => "This form did not come from this page. Go back to the app and start again.",
            (Text::Forged, true) => "该表单并非来自本页面。请返回应用重新开始。",
            (Text::NoDecision, false) => "The request is incomplete.",
            (Text::NoDecision, true) => "请求不完整。",
            (Text::TooMany, false) => "Too many attempts. Wait a minute and try again.",
            (Text::TooMany, true) => "尝试次数过多，请稍后再试。",
            (Text::WrongPassword, false) => "Wrong phone number or password.",
            (Text::WrongPassword, true) => "手机号或密码错误。",
            (Text::Locked, false) => "This account cannot sign in now.",
            (Text::Locked, true) => "该账号当前无法登录。",
            (Text::NoClient, false) => "The request does not name an app.",
            (Text::NoClient, true) => "请求未指明应用。",
            (Text::UnknownApp, false) => "This app is unknown, or not approved to ask for access.",
            (Text::UnknownApp, true) => "该应用不存在，或尚未获准申请授权。",
            (Text::UnregisteredRedirect, false) => "The app asked to return to an address it did not register.",
            (Text::UnregisteredRedirect, true) => "应用请求跳转到一个未登记的地址。",
            (Text::NoRedirect, false) => "The request does not say where to return to.",
            (Text::NoRedirect, true) => "请求未指明返回地址。",
        }
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;\
max-width:30rem;margin:3rem auto;padding:0 1rem;color:#222}h1{font-size:1.3rem}\
.app{border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}.muted{color:#666;font-size:.9rem}\
li{margin:.4rem 0}button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}\
.error{color:#b00020}label{display:block;margin:.6rem 0}input{font-size:1rem;padding:.4rem;width:100%}";

fn document(lang: Lang, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
<style>{STYLE}</style></head><body>{body}</body></html>",
        lang.tag(),
        esc(title)
    )
}

pub fn error(lang: Lang, text: Text) -> String {
    let title = if lang.zh() { "无法完成授权" } else { "Authorization failed" };
    document(lang, title, &format!("<h1>{}</h1><p class=\"error\">{}</p>", esc(title), esc(text.say(lang))))
}

fn app_card(lang: Lang, req: &Checked) -> String {
    let developer = req.developer.as_deref().unwrap_or(if lang.zh() { "（已注销）" } else { "(deleted account)" });
    let by = if lang.zh() { "开发者" } else { "Developer" };
    let returns = if lang.zh() { "授权后将返回" } else { "Returns to" };
    let host = url::Url::parse(&req.redirect_uri)
        .ok()
        .map(|u| u.host_str().map(str::to_string).unwrap_or_else(|| u.scheme().to_string()))
        .unwrap_or_default();
    format!(
        "<div class=\"app\"><strong id=\"app-name\">{}</strong>\
<div class=\"muted\">{by}: <span id=\"developer\">{}</span> · <a href=\"{}\" rel=\"noopener noreferrer\">{}</a></div>\
<div class=\"muted\">{returns}: {}</div></div>",
        esc(&req.app.name),
        esc(developer),
        esc(&req.app.homepage_url),
        esc(&req.app.homepage_url),
        esc(&host)
    )
}

/// The sign-in form shown to a browser without a session; it posts back here and returns to the
/// authorization request.
pub fn sign_in(lang: Lang, req: &Checked, return_to: &str, problem: Option<Text>) -> String {
    let (title, phone, password, submit) = if lang.zh() {
        ("登录以继续授权", "手机号", "密码", "登录")
    } else {
        ("Sign in to continue", "Phone number", "Password", "Sign in")
    };
    let notice = problem.map(|p| format!("<p class=\"error\">{}</p>", esc(p.say(lang)))).unwrap_or_default();
    let body = format!(
        "<h1>{}</h1>{}{notice}<form id=\"sign-in\" method=\"post\" action=\"/oauth/sign-in\">\
<input type=\"hidden\" name=\"return_to\" value=\"{}\">\
<label>{}<input name=\"phone\" type=\"tel\" autocomplete=\"username\" required></label>\
<label>{}<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">{}</button></form>",
        esc(title),
        app_card(lang, req),
        esc(return_to),
        esc(phone),
        esc(password),
        esc(submit)
    );
    document(lang, title, &body)
}

/// The consent page: who asks, for what, in plain words; approve or deny.
pub fn consent(lang: Lang, req: &Checked, raw: &AuthRequest, member: &str, csrf: &str) -> String {
    let (title, asks, signed_in, approve, deny, note) = if lang.zh() {
        ("授权第三方应用", "该应用请求以下权限：", "当前登录", "同意授权", "拒绝", "你可以随时在隐私中心撤销授权。")
    } else {
        (
            "Authorize a third-party app",
            "This app asks to:",
            "Signed in as",
            "Approve",
            "Deny",
            "You can withdraw this access at any time in your privacy centre.",
        )
    };
    let scopes: String = req
        .scopes
        .iter()
        .map(|s| format!("<li data-scope=\"{}\">{}</li>", s.name(), esc(s.describe(lang.zh()))))
        .collect();
    let mut hidden = String::new();
    let fields = [
        ("response_type", raw.response_type.as_deref()),
        ("client_id", raw.client_id.as_deref()),
        ("redirect_uri", raw.redirect_uri.as_deref()),
        ("scope", raw.scope.as_deref()),
        ("state", raw.state.as_deref()),
        ("code_challenge", raw.code_challenge.as_deref()),
        ("code_challenge_method", raw.code_challenge_method.as_deref()),
        ("ui_locales", raw.ui_locales.as_deref()),
        ("csrf", Some(csrf)),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            hidden.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(value)));
        }
    }
    let body = format!(
        "<h1>{}</h1>{}<p>{}</p><ul id=\"scopes\">{scopes}</ul>\
<p class=\"muted\">{}: <span id=\"member\">{}</span></p>\
<form id=\"consent\" method=\"post\" action=\"/oauth/authorize\">{hidden}\
<button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">{}</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">{}</button></form>\
<p class=\"muted\">{}</p>",
        esc(title),
        app_card(lang, req),
        esc(asks),
        esc(signed_in),
        esc(member),
        esc(approve),
        esc(deny),
        esc(note)
    );
    document(lang, title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_follows_ui_locales_then_the_browser() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::choose(None, &headers), Lang::Zh);
        headers.insert(http::header::ACCEPT_LANGUAGE, "en-GB,en;q=0.9".parse().unwrap());
        assert_eq!(Lang::choose(None, &headers), Lang::En);
        assert_eq!(Lang::choose(Some("zh-CN"), &headers), Lang::Zh);
        assert_eq!(Lang::choose(Some("fr en"), &HeaderMap::new()), Lang::En);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
