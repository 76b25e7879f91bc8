//! Keeping credentials that live outside the API key out of text: URLs with userinfo or a query
//! string ([`url`]), and the literal values to scrub from error messages ([`url_secrets`],
//! [`value_secrets`]).

use std::borrow::Cow;

/// What replaces a credential in text.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not scrubbed from free text: they cannot be credentials worth
/// the name, and replacing them would mangle messages (a header `x-api-version: 2` would
/// replace every `2`). URLs are redacted whatever the length ([`url`]).
#[cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
pub(crate) const MIN_SCRUBBED_LEN: usize = 8;

/// The userinfo part of `url` (between `://` and the last `@`), if it has one.
///
/// The last `@` anywhere is taken, not the last one of the authority: a password with an
/// unencoded `/`, `?` or `#` then still counts as userinfo (over-redacting a path with an `@`
/// in an error message is harmless).
fn split_userinfo(url: &str) -> (&str, Option<&str>, &str) {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => (scheme, Some(&rest[..at]), &rest[at + 1..]),
        None => (scheme, None, rest),
    }
}

/// `url` as error messages and `Debug` may show it: userinfo (`user:pass@`) becomes
/// `[REDACTED]@` and a query string or fragment `?[REDACTED]`. A URL with neither is
/// returned as it is.
pub(crate) fn url(url: &str) -> Cow<'_, str> {
    let (scheme, userinfo, rest) = split_userinfo(url);
    let query = rest.find(['?', '#']);
    if userinfo.is_none() && query.is_none() {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if userinfo.is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    match query {
        Some(q) => {
            out.push_str(&rest[..q]);
            out.push('?');
            out.push_str(REDACTED);
        }
        None => out.push_str(rest),
    }
    Cow::Owned(out)
}

/// Whether `url` holds something [`url`] redacts.
pub(crate) fn url_has_secrets(u: &str) -> bool {
    matches!(url(u), Cow::Owned(_))
}

/// The literal credentials in `url` to scrub from free text: the userinfo, its password, and
/// each query value (those of at least [`MIN_SCRUBBED_LEN`] bytes).
#[cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let (_, userinfo, rest) = split_userinfo(url);
    let mut out = Vec::new();
    if let Some(userinfo) = userinfo {
        out.push(userinfo.to_owned());
        if let Some((_, password)) = userinfo.split_once(':') {
            out.push(password.to_owned());
        }
    }
    if let Some(q) = rest.find(['?', '#']) {
        for pair in rest[q + 1..].split(['&', ';', '#']) {
            let value = pair.split_once('=').map_or(pair, |(_, v)| v);
            out.push(value.to_owned());
        }
    }
    out.retain(|s| s.len() >= MIN_SCRUBBED_LEN);
    out
}

/// The literal credentials in a header value to scrub from free text: the value, and each of
/// its whitespace-separated words (`Bearer <token>`: the token alone too), those of at least
/// [`MIN_SCRUBBED_LEN`] bytes.
#[cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
pub(crate) fn value_secrets(value: &str) -> Vec<String> {
    let mut out: Vec<String> = std::iter::once(value.trim())
        .chain(value.split_whitespace())
        .filter(|s| s.len() >= MIN_SCRUBBED_LEN)
        .map(str::to_owned)
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_and_query() {
        assert_eq!(
            url("https://api.openai.com/v1"),
            "https://api.openai.com/v1"
        );
        assert_eq!(url("http://alice:pw@h:1/v1"), "http://[REDACTED]@h:1/v1");
        assert_eq!(url("http://h/v1?key=abc#x"), "http://h/v1?[REDACTED]");
        // An unencoded `/` or `?` in the password still hides it.
        assert_eq!(url("http://u:p/a?b@h/v1"), "http://[REDACTED]@h/v1");
        assert_eq!(url(""), "");
        assert!(url_has_secrets("http://u@h"));
        assert!(!url_has_secrets("http://h:8000/v1"));
    }

    #[cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
    #[test]
    fn literal_secrets_of_urls_and_headers() {
        assert_eq!(
            url_secrets("http://alice:longpassword@h/v1?k=query-secret&x=1"),
            ["alice:longpassword", "longpassword", "query-secret"]
        );
        assert!(url_secrets("http://h/v1").is_empty());
        assert_eq!(
            value_secrets("Bearer tok-123456789"),
            ["Bearer tok-123456789", "tok-123456789"]
        );
        assert!(value_secrets("2").is_empty());
    }
}
