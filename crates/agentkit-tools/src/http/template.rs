//! URL templates: `https://api.example.com/leads/{lead_id}?expand={expand}`.

use agentkit_core::{Error, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use url::Url;

/// Everything but RFC 3986 unreserved characters is encoded (so `/`, `?`, `#`, `&`, `=` in an
/// argument cannot change the URL's structure).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A parsed URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTemplate {
    parts: Vec<Part>,
}

impl UrlTemplate {
    /// Parses a template; placeholders may appear only after the host (in the path, query or
    /// fragment), so arguments can never choose where a request goes.
    pub(crate) fn parse(template: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidConfig(format!("URL template `{template}`: {why}"));
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| bad("a `{` is not closed"))?;
            let name = &after[..close];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad(&format!(
                    "`{{{name}}}` is not a placeholder: write `{{argument_name}}`"
                )));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(bad("a `}` has no matching `{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        let fixed = match parts.first() {
            Some(Part::Literal(prefix)) => prefix.as_str(),
            _ => "",
        };
        let authority_end = fixed
            .find("://")
            .and_then(|i| fixed[i + 3..].find(['/', '?', '#']).map(|j| i + 3 + j));
        if authority_end.is_none() && parts.iter().any(|p| matches!(p, Part::Variable(_))) {
            return Err(bad(
                "placeholders may only appear after the host (in the path or query), e.g. \
                 `https://api.example.com/leads/{id}`",
            ));
        }
        Ok(Self { parts })
    }

    /// The placeholder names, in order.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The URL with `sample` in every placeholder (to check the fixed part at build time).
    pub(crate) fn sample(&self) -> Result<Url> {
        let text: String = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.as_str(),
                Part::Variable(_) => "sample",
            })
            .collect();
        Url::parse(&text).map_err(|e| Error::InvalidConfig(format!("URL template: {e}")))
    }

    /// The URL for these arguments: strings, numbers and booleans, percent-encoded.
    pub(crate) fn render(&self, arguments: &Value) -> Result<Url> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => text.push_str(l),
                Part::Variable(name) => {
                    let value = match arguments.get(name) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        None | Some(Value::Null) => {
                            return Err(Error::InvalidInput(format!(
                                "argument `{name}` is required (it is part of the URL)"
                            )));
                        }
                        Some(_) => {
                            return Err(Error::InvalidInput(format!(
                                "argument `{name}` must be a string, a number or a boolean (it \
                                 is part of the URL)"
                            )));
                        }
                    };
                    if value == "." || value == ".." {
                        return Err(Error::InvalidInput(format!(
                            "argument `{name}` cannot be `{value}`"
                        )));
                    }
                    text.extend(utf8_percent_encode(&value, COMPONENT));
                }
            }
        }
        Url::parse(&text).map_err(|e| Error::InvalidInput(format!("the URL is invalid: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn renders_percent_encoded_arguments() {
        let t = UrlTemplate::parse("https://api.example.com/leads/{id}?q={q}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["id", "q"]);
        let url = t
            .render(&json!({"id": "a/../b", "q": "x&admin=1 #"}))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/leads/a%2F..%2Fb?q=x%26admin%3D1%20%23"
        );
        assert_eq!(url.host_str(), Some("api.example.com"));
        assert!(t.render(&json!({"id": "..", "q": 1})).is_err());
        assert!(t.render(&json!({"q": 1})).is_err());
        assert!(t.render(&json!({"id": {"x": 1}, "q": 1})).is_err());
    }

    #[test]
    fn placeholders_cannot_choose_the_host() {
        for bad in [
            "https://{host}/x",
            "https://api.example.com{path}",
            "{base}/x",
            "https://api.example.com/{a",
            "https://api.example.com/{a-b}",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad}");
        }
        assert!(UrlTemplate::parse("https://api.example.com").is_ok());
    }
}
