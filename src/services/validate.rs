//! Input rules shared by every service: text lengths, control characters, URLs, phone numbers.
//! Every failure is `BAD_USER_INPUT` naming the field, so a form can put the message next to it.

use unicode_normalization::UnicodeNormalization as _;

use crate::error::{AppError, AppResult};

/// Whether a text field may span lines.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Single,
    Multi,
}

/// Normalises (NFC, trimmed, CRLF -> LF) and checks a text field: `min..=max` characters, no
/// control characters (newlines and tabs only where `Lines::Multi`).
pub fn text(field: &str, value: &str, min: usize, max: usize, lines: Lines) -> AppResult<String> {
    let value: String = value.replace("\r\n", "\n").nfc().collect();
    let value = value.trim().to_string();
    for c in value.chars() {
        let allowed_ws = lines == Lines::Multi && (c == '\n' || c == '\t');
        if !allowed_ws && !visible(c) {
            return Err(AppError::bad_input(field, "must not contain control characters"));
        }
    }
    let len = value.chars().count();
    if len < min {
        return Err(if min == 1 {
            AppError::bad_input(field, "must not be empty")
        } else {
            AppError::bad_input(field, format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(AppError::bad_input(field, format!("must be at most {max} characters")));
    }
    Ok(value)
}

/// Whether a character may appear in user text: not a control, format, line/paragraph separator,
/// surrogate or unassigned code point (invisible characters are how spoofed names and reversed text
/// get in), except the joiners that emoji sequences and some scripts need.
fn visible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory as _};
    if matches!(c, '\u{200C}' | '\u{200D}') {
        return true;
    }
    !matches!(
        c.general_category(),
        G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator | G::Surrogate | G::Unassigned
    )
}

/// Like [`text`], but an empty value means "not set".
pub fn optional_text(field: &str, value: Option<&str>, max: usize, lines: Lines) -> AppResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => {
            let v = text(field, v, 0, max, lines)?;
            Ok((!v.is_empty()).then_some(v))
        }
    }
}

/// An absolute http(s) URL of reasonable length.
pub fn http_url(field: &str, value: &str) -> AppResult<String> {
    let value = value.trim();
    if value.len() > 2048 {
        return Err(AppError::bad_input(field, "must be at most 2048 characters"));
    }
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u.to_string()),
        _ => Err(AppError::bad_input(field, "must be an http or https URL")),
    }
}

/// A phone number in E.164 (`+8613800138000`). Numbers without a country code are read as mainland
/// Chinese, the community's home market.
pub fn phone(field: &str, value: &str) -> AppResult<String> {
    let parsed = phonenumber::parse(Some(phonenumber::country::Id::CN), value.trim())
        .map_err(|_| AppError::bad_input(field, "is not a phone number"))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(AppError::bad_input(field, "is not a valid phone number"));
    }
    Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

/// Passwords: 8 to 128 characters, nothing else imposed (NIST SP 800-63B: length beats composition rules).
pub fn password(field: &str, value: &str) -> AppResult<()> {
    let len = value.chars().count();
    if len < 8 {
        return Err(AppError::bad_input(field, "must be at least 8 characters"));
    }
    if len > 128 {
        return Err(AppError::bad_input(field, "must be at most 128 characters"));
    }
    Ok(())
}

pub fn email(field: &str, value: &str) -> AppResult<String> {
    let value = value.trim().to_lowercase();
    if value.len() > 254 || !email_address::EmailAddress::is_valid(&value) {
        return Err(AppError::bad_input(field, "is not an email address"));
    }
    Ok(value)
}

/// Account names are handles: 3 to 32 ASCII letters, digits or underscores, stored lower-case so
/// `Alice` and `alice` cannot both exist.
pub fn account_name(field: &str, value: &str) -> AppResult<String> {
    let value = value.trim().to_ascii_lowercase();
    let ok = (3..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(AppError::bad_input(field, "must be 3 to 32 letters, digits or underscores"));
    }
    Ok(value)
}

/// Board slugs appear in URLs: 2 to 40 lower-case letters, digits and dashes.
pub fn slug(field: &str, value: &str) -> AppResult<String> {
    let value = value.trim().to_ascii_lowercase();
    let ok = (2..=40).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !ok {
        return Err(AppError::bad_input(field, "must be 2 to 40 lower-case letters, digits or dashes"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(phone("p", "13800138000").unwrap(), "+8613800138000");
        assert_eq!(phone("p", "+86 138-0013-8000").unwrap(), "+8613800138000");
        assert_eq!(phone("p", "+1 650 253 0000").unwrap(), "+16502530000");
        assert!(phone("p", "12345").is_err());
        assert!(phone("p", "not a phone").is_err());
    }

    #[test]
    fn text_rules() {
        assert_eq!(text("t", "  外貿 FOB  ", 1, 10, Lines::Single).unwrap(), "外貿 FOB");
        assert!(text("t", "a\u{0007}b", 1, 10, Lines::Single).is_err());
        assert!(text("t", "a\nb", 1, 10, Lines::Single).is_err());
        assert_eq!(text("t", "a\r\nb", 1, 10, Lines::Multi).unwrap(), "a\nb");
        assert!(text("t", "   ", 1, 10, Lines::Single).is_err());
        assert!(text("t", "询盘询盘询盘", 1, 5, Lines::Single).is_err());
        assert!(text("t", "a\u{202E}b", 1, 10, Lines::Multi).is_err());
        assert!(text("t", "a\u{2028}b", 1, 10, Lines::Single).is_err());
        assert!(text("t", "soft\u{00AD}hyphen", 1, 20, Lines::Single).is_err());
        // Emoji sequences joined by ZWJ are ordinary text.
        assert!(text("t", "家庭 👨\u{200D}👩\u{200D}👧", 1, 20, Lines::Single).is_ok());
    }
}
