//! Suggestions for misspelt names in configuration messages.

/// Maximum number of edits between a misspelt name and the name suggested for it.
const MAX_EDITS: usize = 2;

/// Returns the candidate nearest to `word` within two edits, or `None` when none is that near
/// or `word` is one of them.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(edits, _)| (1..=MAX_EDITS).contains(edits))
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, candidate)| candidate)
}

/// Returns the number of single-character insertions, deletions and substitutions that turn
/// `a` into `b` (Levenshtein distance).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(
            edit_distance("healthcheck-htpp.http", "healthcheck-http.http"),
            1
        );
        assert_eq!(
            edit_distance("healthcheck-http.htp", "healthcheck-http.http"),
            1
        );
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            edit_distance("healthcheck-ssh.ssh", "healthcheck-tcp.tcp"),
            6
        );
    }

    #[test]
    fn closest_suggests_only_near_names() {
        let keys = ["url", "method", "timeout"];
        assert_eq!(closest("methdo", keys), Some("method"));
        assert_eq!(closest("timeot", keys), Some("timeout"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("url", keys), None);
    }
}
