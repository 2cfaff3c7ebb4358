//! The one way every tatzelwurm program turns a command-line parser's error into the sentence
//! it prints: the first paragraph of clap's rendering, without its `error:` label, its lines
//! joined. The usage, tips and "For more information" paragraphs after it are left out; each
//! program adds where to look. Takes the rendered text, so that proto does not depend on clap.
//! Not on the wire.

/// The message of a rendered clap error, as one line.
pub fn clap_message(rendered: &str) -> String {
    let text = rendered.trim_start();
    let text = text.strip_prefix("error:").unwrap_or(text);
    let first = text.split("\n\n").next().unwrap_or_default();
    let lines: Vec<&str> = first
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        "the command line cannot be read".to_string()
    } else {
        lines.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label and the paragraphs after the first go; a message over several lines stays
    /// whole on one.
    #[test]
    fn one_line_from_clap() {
        assert_eq!(
            clap_message("error: unexpected argument '--x' found\n\nUsage: p [OPTIONS]\n\nFor more information, try '--help'.\n"),
            "unexpected argument '--x' found"
        );
        assert_eq!(
            clap_message("error: the following required arguments were not provided:\n  <FUNC>\n\nUsage: p task add <FUNC>\n"),
            "the following required arguments were not provided: <FUNC>"
        );
        assert_eq!(clap_message(""), "the command line cannot be read");
    }
}
