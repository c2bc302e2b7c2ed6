//! OAuth 2.0 Form Post Response Mode: the page a provider answers the authorization request
//! with, whose script POSTs the response to the client's `redirect_uri` (cross-site, from the
//! provider's origin), and a reader of that page for tests that have no browser.

use rocket::http::{ContentType, Status};

use super::{html_escape, Raw};

/// An authorization response sent with `response_mode=form_post`: the `redirect_uri` it is
/// POSTed to and its fields (`code`, `state`, `id_token`, `user`, or `error`), in order.
///
/// A test without a browser reads it from the provider's page and POSTs the fields itself,
/// as the page's script would:
///
/// ```
/// use rocket_social_auth::testing::FormPost;
///
/// let page = r#"<form method="post" action="https://app.example/auth/apple/callback">
/// <input type="hidden" name="code" value="c1"><input type="hidden" name="state" value="s&amp;1">
/// </form>"#;
/// let post = FormPost::parse(page).unwrap();
/// assert_eq!(post.action, "https://app.example/auth/apple/callback");
/// assert_eq!(post.field("state"), Some("s&1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPost {
    /// Where the form is POSTed: the client's `redirect_uri`.
    pub action: String,
    /// The fields, in the order of the page.
    pub fields: Vec<(String, String)>,
}

impl FormPost {
    /// A response to POST to `action`.
    pub fn new(action: &str, fields: &[(&str, &str)]) -> Self {
        FormPost {
            action: action.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The value of the field `name`, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body the browser POSTs (`application/x-www-form-urlencoded`).
    pub fn body(&self) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(&self.fields);
        form.finish()
    }

    /// Reads the form of a provider's form_post page (as this module writes them: one form,
    /// hidden inputs, attributes in double quotes); `None` when the page has no form.
    pub fn parse(page: &str) -> Option<FormPost> {
        let form_start = page.find("<form")?;
        let form_tag = &page[form_start..form_start + page[form_start..].find('>')?];
        let action = attribute(form_tag, "action")?;
        let form_end = page[form_start..]
            .find("</form>")
            .map_or(page.len(), |e| form_start + e);
        let mut fields = Vec::new();
        let mut rest = &page[form_start..form_end];
        while let Some(at) = rest.find("<input") {
            rest = &rest[at..];
            let end = rest.find('>')?;
            let tag = &rest[..end];
            if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
                fields.push((name, value));
            }
            rest = &rest[end..];
        }
        Some(FormPost { action, fields })
    }

    /// The page: an auto-submitting form, as the providers serve it (a button for browsers
    /// without scripts).
    pub(super) fn page(&self) -> Raw {
        let inputs: String = self
            .fields
            .iter()
            .map(|(k, v)| {
                format!(
                    r#"<input type="hidden" name="{}" value="{}">"#,
                    html_escape(k),
                    html_escape(v)
                )
            })
            .collect();
        let body = format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signing in…</title></head>
<body><form method="post" action="{action}">{inputs}<noscript><button type="submit">Continue</button></noscript></form>
<script>document.forms[0].submit();</script></body></html>"#,
            action = html_escape(&self.action),
        );
        Raw {
            status: Status::Ok,
            content_type: ContentType::HTML,
            body,
            headers: vec![("Cache-Control", "no-store".into())],
        }
    }
}

/// The value of `name="…"` in a tag, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
