//! The notice e-mail to a professional (DOMAIN.md section 5, Delivery): what a match or history
//! notice says, in Dutch or in English as the recipient's organisation chose. It names the
//! recipient's own signal, the match, and the other party as it stands (organisation, name,
//! e-mail, phone, signal number, state and region) and says what to do next. It holds nothing
//! about the youth: no BSN, name, birth date or reason, because the index holds none either.
//!
//! Pure text: the transport builds the headers with its own types.

use std::fmt::Write as _;

use super::matching::{MatchType, NoticeKind};
use super::{OrganisationName, ProfessionalContact, RegionId, SignalId, SignalState};

/// The language of an organisation's notice e-mails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Language {
    /// Dutch, the federation's language.
    #[default]
    Dutch,
    English,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not a language of notice e-mails (nl or en)")]
pub struct UnknownLanguage;

impl Language {
    pub fn parse(code: &str) -> Result<Self, UnknownLanguage> {
        match code {
            "nl" => Ok(Self::Dutch),
            "en" => Ok(Self::English),
            _ => Err(UnknownLanguage),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Dutch => "nl",
            Self::English => "en",
        }
    }
}

/// The other party of a notice, as the recipient is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailCounterpart {
    pub organisation_name: OrganisationName,
    pub contact: ProfessionalContact,
    pub signal_id: SignalId,
    pub state: SignalState,
    pub region_id: RegionId,
}

/// What one notice e-mail says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeMail {
    /// The recipient's own signal.
    pub signal_id: SignalId,
    pub match_type: MatchType,
    pub kind: NoticeKind,
    pub counterpart: MailCounterpart,
}

/// A composed e-mail: one subject line and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub body: String,
}

/// Words of one language.
struct Words {
    subject_match: &'static str,
    subject_history: &'static str,
    greeting: &'static str,
    youth_match: &'static str,
    family_match: &'static str,
    history: &'static str,
    your_signal: &'static str,
    other_party: &'static str,
    organisation: &'static str,
    professional: &'static str,
    email: &'static str,
    phone: &'static str,
    no_phone: &'static str,
    signal: &'static str,
    state: &'static str,
    active: &'static str,
    inactive: &'static str,
    region: &'static str,
    next: &'static str,
    footer: &'static str,
}

const DUTCH: Words = Words {
    subject_match: "Verwijsindex: match op uw signaal",
    subject_history: "Verwijsindex: eerdere betrokkenheid bij uw signaal",
    greeting: "Beste professional,",
    youth_match: "Een professional van een andere organisatie heeft dezelfde jongere gesignaleerd \
                  als u.",
    family_match: "Een professional van een andere organisatie heeft een jongere uit hetzelfde \
                   gezin gesignaleerd als u.",
    history: "Een andere organisatie was eerder betrokken bij dezelfde jongere of hetzelfde \
              gezin; haar signaal is niet meer actief.",
    your_signal: "Uw signaal",
    other_party: "De andere betrokkene",
    organisation: "Organisatie",
    professional: "Naam",
    email: "E-mail",
    phone: "Telefoon",
    no_phone: "niet opgegeven",
    signal: "Signaal",
    state: "Status",
    active: "actief",
    inactive: "niet actief",
    region: "Regio",
    next: "Wat nu: neem contact op met de andere betrokkene om de hulp af te stemmen, nadat u \
           dit met de ouders of de jongere hebt besproken. De verwijsindex zegt alleen dat u \
           beiden betrokken bent, nooit waarom; deel informatie alleen volgens de regels van \
           uw beroep.",
    footer: "Dit bericht is automatisch verstuurd door de Verwijsindex Risicojongeren. U vindt \
             de match ook in uw overzicht van matches.",
};

const ENGLISH: Words = Words {
    subject_match: "Referral index: a match on your signal",
    subject_history: "Referral index: earlier involvement with your signal",
    greeting: "Dear professional,",
    youth_match: "A professional of another organisation has registered the same youth as you.",
    family_match: "A professional of another organisation has registered a youth of the same \
                   family as you.",
    history: "Another organisation was involved earlier with the same youth or family; its \
              signal is no longer active.",
    your_signal: "Your signal",
    other_party: "The other party",
    organisation: "Organisation",
    professional: "Name",
    email: "E-mail",
    phone: "Phone",
    no_phone: "not given",
    signal: "Signal",
    state: "State",
    active: "active",
    inactive: "inactive",
    region: "Region",
    next: "What to do: contact the other party to coordinate the help, after consulting the \
           parents or the youth. The index only says that you are both involved, never why; \
           share information only as the rules of your profession allow.",
    footer: "This message was sent automatically by the Verwijsindex Risicojongeren (the Dutch \
             referral index for youths at risk). The match is also in your list of matches.",
};

/// The e-mail for `notice` in `language`.
pub fn compose(notice: &NoticeMail, language: Language) -> Composed {
    let words = match language {
        Language::Dutch => &DUTCH,
        Language::English => &ENGLISH,
    };
    let subject = match notice.kind {
        NoticeKind::Match => words.subject_match,
        NoticeKind::History => words.subject_history,
    };
    let what = match (notice.kind, notice.match_type) {
        (NoticeKind::History, _) => words.history,
        (NoticeKind::Match, MatchType::Youth) => words.youth_match,
        (NoticeKind::Match, MatchType::Family) => words.family_match,
    };
    let other = &notice.counterpart;
    let state = match other.state {
        SignalState::Active => words.active,
        SignalState::Inactive => words.inactive,
    };
    let mut body = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        body,
        "{greeting}\n\n{what}\n\n{your_signal}: {own}\n\n{other_party}\n  {organisation}: {org}\n  \
         {professional}: {name}\n  {email}: {address}\n  {phone}: {number}\n  {signal}: {id}\n  \
         {state_label}: {state}\n  {region}: {region_id}\n\n{next}\n\n-- \n{footer}\n",
        greeting = words.greeting,
        your_signal = words.your_signal,
        own = notice.signal_id,
        other_party = words.other_party,
        organisation = words.organisation,
        org = other.organisation_name,
        professional = words.professional,
        name = other.contact.name(),
        email = words.email,
        address = other.contact.email(),
        phone = words.phone,
        number = other.contact.phone().unwrap_or(words.no_phone),
        signal = words.signal,
        id = other.signal_id,
        state_label = words.state,
        region = words.region,
        region_id = other.region_id,
        next = words.next,
        footer = words.footer,
    );
    Composed {
        subject: subject.to_owned(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ValidationErrors;
    use crate::domain::contact::ContactInput;

    fn notice(kind: NoticeKind, match_type: MatchType, phone: &str) -> NoticeMail {
        let mut errors = ValidationErrors::new();
        let contact = ProfessionalContact::parse(
            ContactInput {
                professional_id: "p7",
                name: "Anna de Vries",
                email: "anna@vt-zuid.example.nl",
                phone,
            },
            "professional",
            &mut errors,
        )
        .unwrap();
        NoticeMail {
            signal_id: SignalId::parse("0a9c1d5e-1111-4aaa-8bbb-000000000001").unwrap(),
            match_type,
            kind,
            counterpart: MailCounterpart {
                organisation_name: OrganisationName::parse("Veilig Thuis Zuid").unwrap(),
                contact,
                signal_id: SignalId::parse("0a9c1d5e-2222-4aaa-8bbb-000000000002").unwrap(),
                state: SignalState::Active,
                region_id: RegionId::parse("south").unwrap(),
            },
        }
    }

    #[test]
    fn a_dutch_match_mail_names_both_signals_and_the_other_party() {
        let mail = compose(
            &notice(NoticeKind::Match, MatchType::Youth, "010-1234567"),
            Language::Dutch,
        );
        assert_eq!(mail.subject, "Verwijsindex: match op uw signaal");
        for expected in [
            "dezelfde jongere",
            "Uw signaal: 0a9c1d5e-1111-4aaa-8bbb-000000000001",
            "Organisatie: Veilig Thuis Zuid",
            "Naam: Anna de Vries",
            "E-mail: anna@vt-zuid.example.nl",
            "Telefoon: 010-1234567",
            "Signaal: 0a9c1d5e-2222-4aaa-8bbb-000000000002",
            "Status: actief",
            "Regio: south",
            "nadat u dit met de ouders of de jongere hebt besproken",
        ] {
            assert!(
                mail.body.contains(expected),
                "{expected:?} in\n{}",
                mail.body
            );
        }
    }

    #[test]
    fn an_english_family_mail_and_a_history_mail_say_what_they_are() {
        let family = compose(
            &notice(NoticeKind::Match, MatchType::Family, ""),
            Language::English,
        );
        assert_eq!(family.subject, "Referral index: a match on your signal");
        assert!(family.body.contains("a youth of the same family"));
        assert!(family.body.contains("Phone: not given"));
        assert!(
            family
                .body
                .contains("after consulting the parents or the youth")
        );
        let history = compose(
            &notice(NoticeKind::History, MatchType::Youth, ""),
            Language::English,
        );
        assert_eq!(
            history.subject,
            "Referral index: earlier involvement with your signal"
        );
        assert!(history.body.contains("no longer active"));
    }

    #[test]
    fn the_subject_is_one_line_and_the_body_has_no_bare_carriage_return() {
        for language in [Language::Dutch, Language::English] {
            for kind in [NoticeKind::Match, NoticeKind::History] {
                let mail = compose(&notice(kind, MatchType::Youth, ""), language);
                assert!(!mail.subject.contains(['\r', '\n']));
                assert!(!mail.body.contains('\r'));
            }
        }
    }

    #[test]
    fn languages_are_nl_and_en() {
        assert_eq!(Language::parse("nl"), Ok(Language::Dutch));
        assert_eq!(Language::parse("en"), Ok(Language::English));
        assert_eq!(Language::parse("de"), Err(UnknownLanguage));
        assert_eq!(Language::default().code(), "nl");
    }
}
