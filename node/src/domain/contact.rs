//! The professional's contact details: what a counterpart sees in a match notice, and where the
//! node sends the notice e-mail (DOMAIN.md sections 2, 3.4 and 6).

use std::str::FromStr;

use serde::Serialize;

/// A professional's identity and contact, checked field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfessionalContact {
    professional_id: String,
    name: String,
    email: String,
    phone: Option<String>,
}

/// Unchecked contact fields as they arrive from a caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContactInput<'a> {
    pub professional_id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    /// Empty means "no phone number".
    pub phone: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactFieldError {
    #[error("is required")]
    Empty,
    #[error("is longer than {0} characters")]
    TooLong(usize),
    #[error("may not contain control characters")]
    ControlCharacter,
    #[error("is not a valid e-mail address")]
    Email,
    #[error("may hold only digits, spaces, '+', '-', '(' and ')'")]
    Phone,
}

impl ProfessionalContact {
    pub const PROFESSIONAL_ID_MAX_LEN: usize = 64;
    pub const NAME_MAX_LEN: usize = 200;
    pub const EMAIL_MAX_LEN: usize = 254;
    pub const PHONE_MAX_LEN: usize = 32;

    /// Checks every field and reports each bad one as `(field, error)`, with `prefix` before the
    /// field name (`professional.email`).
    pub fn parse(
        input: ContactInput<'_>,
        prefix: &str,
        errors: &mut super::ValidationErrors,
    ) -> Option<Self> {
        let field = |name: &str| format!("{prefix}.{name}");
        let professional_id = errors.check(
            &field("professional_id"),
            text(input.professional_id, Self::PROFESSIONAL_ID_MAX_LEN),
        );
        let name = errors.check(&field("name"), text(input.name, Self::NAME_MAX_LEN));
        let email = errors.check(&field("email"), email(input.email));
        let phone = errors.check(&field("phone"), phone(input.phone));
        Some(Self {
            professional_id: professional_id?,
            name: name?,
            email: email?,
            phone: phone?,
        })
    }

    pub fn professional_id(&self) -> &str {
        &self.professional_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }

    /// Rebuilds a contact that was validated before it was stored.
    pub fn from_stored(
        professional_id: String,
        name: String,
        email: String,
        phone: Option<String>,
    ) -> Self {
        Self {
            professional_id,
            name,
            email,
            phone,
        }
    }
}

/// A professional's id on its own, as a request names the professional acting.
pub fn parse_professional_id(input: &str) -> Result<String, ContactFieldError> {
    text(input, ProfessionalContact::PROFESSIONAL_ID_MAX_LEN)
}

fn text(input: &str, max_len: usize) -> Result<String, ContactFieldError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ContactFieldError::Empty);
    }
    if trimmed.chars().count() > max_len {
        return Err(ContactFieldError::TooLong(max_len));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ContactFieldError::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

fn email(input: &str) -> Result<String, ContactFieldError> {
    let trimmed = text(input, ProfessionalContact::EMAIL_MAX_LEN)?;
    let address =
        email_address::EmailAddress::from_str(&trimmed).map_err(|_| ContactFieldError::Email)?;
    // Notices are e-mailed; a domain without a dot (`a@localhost`) cannot be delivered to.
    if !address.domain().contains('.') || address.display_part() != "" {
        return Err(ContactFieldError::Email);
    }
    Ok(address.email().to_owned())
}

fn phone(input: &str) -> Result<Option<String>, ContactFieldError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > ProfessionalContact::PHONE_MAX_LEN {
        return Err(ContactFieldError::TooLong(
            ProfessionalContact::PHONE_MAX_LEN,
        ));
    }
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')');
    if !trimmed.chars().all(allowed) || !trimmed.chars().any(|c| c.is_ascii_digit()) {
        return Err(ContactFieldError::Phone);
    }
    Ok(Some(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ValidationErrors;

    fn parse(input: ContactInput<'_>) -> Result<ProfessionalContact, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let contact = ProfessionalContact::parse(input, "professional", &mut errors);
        errors.into_result().map(|()| contact.unwrap())
    }

    fn good() -> ContactInput<'static> {
        ContactInput {
            professional_id: "p-17",
            name: "J. de Vries",
            email: "j.devries@jgz-noord.example.nl",
            phone: "+31 50 123 4567",
        }
    }

    #[test]
    fn a_complete_contact_is_accepted() {
        let contact = parse(good()).unwrap();
        assert_eq!(contact.phone(), Some("+31 50 123 4567"));
    }

    #[test]
    fn phone_is_optional() {
        let contact = parse(ContactInput {
            phone: "",
            ..good()
        })
        .unwrap();
        assert_eq!(contact.phone(), None);
    }

    #[test]
    fn each_bad_field_is_reported_once() {
        let errors = parse(ContactInput {
            professional_id: "",
            name: "x\u{7}",
            email: "not-an-address",
            phone: "call me",
        })
        .unwrap_err();
        let fields: Vec<_> = errors
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "professional.professional_id",
                "professional.name",
                "professional.email",
                "professional.phone"
            ]
        );
    }

    #[test]
    fn undeliverable_and_display_name_addresses_are_refused() {
        for email in ["a@localhost", "J <j@x.nl>", "@x.nl", "j@", "j@@x.nl"] {
            assert!(parse(ContactInput { email, ..good() }).is_err(), "{email}");
        }
    }

    #[test]
    fn control_characters_that_could_inject_an_email_header_are_refused() {
        // The contact goes into notice e-mails: a line break must never get through, not in
        // the name and not in the phone number.
        for (name, phone, field) in [
            ("A.\r\nBcc: x@y.nl", "", "professional.name"),
            ("A.\u{0}B", "", "professional.name"),
            ("A. de Jong", "050\r\n123", "professional.phone"),
            ("A. de Jong", "050\t123", "professional.phone"),
        ] {
            let errors = parse(ContactInput {
                name,
                phone,
                ..good()
            })
            .unwrap_err();
            let fields: Vec<_> = errors
                .violations()
                .iter()
                .map(|v| v.field.as_str())
                .collect();
            assert_eq!(fields, [field], "{name:?} {phone:?}");
        }
    }

    #[test]
    fn overlong_name_is_refused() {
        let name = "a".repeat(201);
        assert!(
            parse(ContactInput {
                name: &name,
                ..good()
            })
            .is_err()
        );
    }
}
