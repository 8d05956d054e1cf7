//! The organisation registry of a dev federation, `organisations.toml`, in the TOML format the
//! nodes read (`vix_node::domain::organisations`).

use std::fs;
use std::path::Path;

use crate::{DevOrganisation, DevPkiError, DevPkiSpec, files};

/// Writes `organisations.toml`: the organisation registry of `spec`'s federation, in the
/// format the nodes read (`vix_node::domain::organisations`). Each organisation's name is the
/// one its certificate's CN carries, but the nodes show the registry's.
pub fn write_organisation_registry(dir: &Path, spec: &DevPkiSpec) -> Result<(), DevPkiError> {
    let path = dir.join(files::ORGANISATION_REGISTRY);
    fs::write(
        &path,
        organisation_registry_toml(&spec.regions, &spec.organisations),
    )
    .map_err(|source| DevPkiError::Write { path, source })
}

/// An organisation registry in TOML, for `regions` and `organisations`.
pub fn organisation_registry_toml(regions: &[String], organisations: &[DevOrganisation]) -> String {
    let mut text = String::from(
        "# The organisation registry of the development federation, written by vix-certs-dev.\n\
         # The hub and every region load it: which region serves which organisation, and the\n\
         # name shown for it (never a certificate's CN).\n",
    );
    let regions: Vec<String> = regions.iter().map(|region| toml_string(region)).collect();
    text.push_str(&format!("regions = [{}]\n", regions.join(", ")));
    for org in organisations {
        text.push_str(&format!(
            "\n[[organisations]]\nid = {}\nname = {}\nregion = {}\n",
            toml_string(&org.id),
            toml_string(&org.name),
            toml_string(&org.region)
        ));
    }
    text
}

/// A TOML basic string. Control characters are escaped, so the nodes see (and refuse) them
/// rather than a file that does not parse.
fn toml_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_organisation_registry_lists_every_organisation_and_escapes_names() {
        let spec = DevPkiSpec::default();
        let text = organisation_registry_toml(&spec.regions, &spec.organisations);
        assert!(
            text.contains("regions = [\"north\", \"south\", \"east\"]"),
            "{text}"
        );
        for org in &spec.organisations {
            assert!(text.contains(&format!("id = \"{}\"", org.id)), "{text}");
            assert!(text.contains(&format!("name = \"{}\"", org.name)), "{text}");
        }
        assert_eq!(toml_string("a\"b\\c\r\n"), "\"a\\\"b\\\\c\\u000D\\u000A\"");
    }
}
