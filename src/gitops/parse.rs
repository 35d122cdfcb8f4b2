//! YAML text to documents: several documents per file, YAML 1.2, duplicate keys rejected, and a
//! budget that stops alias bombs and document storms before they use memory.

use super::load::Limits;
use super::node::{Node, Position};

/// Maximum number of events aliases may replay in one file. Config files rarely use aliases, so
/// this leaves room for ordinary use, while a billion-laughs file needs billions.
const MAX_REPLAYED_EVENTS: usize = 10_000;

/// Reason a file's text could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseFailure {
    pub at: Position,
    pub message: String,
}

/// Parses every non-empty document of a file.
pub(crate) fn parse_documents(text: &str, limits: &Limits) -> Result<Vec<Node>, ParseFailure> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: limits.documents_per_file,
            max_depth: 64,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
        },
        // YAML 1.2 core booleans only, as Checkstack's parser reads them: `yes` stays text.
        strict_booleans: true,
    };
    let documents = serde_saphyr::from_multiple_with_options::<Node>(text, options)
        .map_err(|e| failure(&e, limits))?;
    if documents.len() > limits.documents_per_file {
        let at = documents[limits.documents_per_file].at;
        let message = format!(
            "too many documents: {} found, at most {} per file; split the file",
            documents.len(),
            limits.documents_per_file
        );
        return Err(ParseFailure { at, message });
    }
    Ok(documents)
}

fn failure(error: &serde_saphyr::Error, limits: &Limits) -> ParseFailure {
    let at = error.location().map_or(Position::default(), |l| Position {
        line: u32::try_from(l.line()).unwrap_or(u32::MAX),
        column: u32::try_from(l.column()).unwrap_or(u32::MAX),
    });
    let rendered = error.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let message = plain_message(&rendered, at);
    let message = if message.contains("alias replay limit") {
        format!(
            "aliases expand to more than {MAX_REPLAYED_EVENTS} nodes; the file is rejected \
             to protect memory, so expand fewer aliases"
        )
    } else if message.contains("Documents {") {
        format!(
            "too many documents: at most {} per file; split the file",
            limits.documents_per_file
        )
    } else if message.contains("mapping values are not allowed") {
        // The parser's wording for a key indented less or more than its siblings.
        format!("{message}; check the indentation of this line and the one above")
    } else {
        message
    };
    ParseFailure { at, message }
}

/// Strips the position the parser writes into its messages, since problems carry it apart.
fn plain_message(rendered: &str, at: Position) -> String {
    let first_line = rendered.lines().next().unwrap_or(rendered).trim();
    let text = first_line.strip_prefix("error: ").unwrap_or(first_line);
    let prefix = format!("line {} column {}: ", at.line, at.column);
    let text = text.strip_prefix(&prefix).unwrap_or(text);
    let suffix = format!(" at line {}, column {}", at.line, at.column);
    let text = text.strip_suffix(&suffix).unwrap_or(text);
    let text = text
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(text);
    format!("invalid YAML: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn bad_indentation_is_hinted() {
        let failure =
            parse_documents("spec:\n  url: a\n    method: b\n", &limits()).expect_err("indent");
        assert!(
            failure.message.contains("check the indentation"),
            "{}",
            failure.message
        );
        assert_eq!(failure.at.line, 3);
    }

    #[test]
    fn syntax_error_has_position() {
        let failure = parse_documents("a: 1\nb: [1, 2\n", &limits()).expect_err("unclosed list");
        println!("{failure:?}");
        assert_eq!(failure.at.line, 2);
        assert!(
            failure.message.starts_with("invalid YAML: "),
            "{}",
            failure.message
        );
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let failure = parse_documents("a: 1\na: 2\n", &limits()).expect_err("duplicate key");
        println!("{failure:?}");
        assert_eq!(failure.at.line, 2);
        assert!(failure.message.contains("duplicate"), "{}", failure.message);
    }

    #[test]
    fn alias_bomb_is_rejected() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let failure = parse_documents(&text, &limits()).expect_err("over the limit");
        println!("{failure:?}");
        assert!(failure.at.line >= 1);
    }

    #[test]
    fn document_storm_is_rejected() {
        let text = "a: 1\n---\n".repeat(limits().documents_per_file + 1);
        let failure = parse_documents(&text, &limits()).expect_err("over the limit");
        println!("{failure:?}");
        assert!(failure.message.contains("documents"), "{}", failure.message);
    }

    #[test]
    fn yes_stays_text() {
        let docs = parse_documents("tier: yes\nok: true\n", &limits()).expect("parses");
        let json = docs[0].to_json();
        assert_eq!(json["tier"], "yes");
        assert_eq!(json["ok"], true);
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("# comment\n---\na: 1\n---\n", &limits()).expect("parses");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].at.line, 3);
    }
}
