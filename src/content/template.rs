//! `{name}` templates for card texts. Names are checked against the card type's allowed set at
//! start-up, so a typo in a card file stops the service instead of reaching a clinician.

use super::ContentError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    pub fn parse(file: &str, field: &str, text: &str, allowed: &[&str]) -> Result<Template, ContentError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            _ => {
                                return Err(ContentError::new(
                                    file,
                                    field,
                                    "unclosed or malformed `{` placeholder (write `{{` for a literal brace)",
                                ));
                            }
                        }
                    }
                    if !allowed.contains(&name.as_str()) {
                        return Err(ContentError::new(
                            file,
                            field,
                            format!("unknown placeholder `{{{name}}}`; allowed here: {}", allowed.join(", ")),
                        ));
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Variable(name));
                }
                '}' => {
                    return Err(ContentError::new(file, field, "stray `}` (write `}}` for a literal brace)"));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template { segments })
    }

    /// Renders with the value of each `(name, value)` pair; names without a pair render empty.
    pub fn fill(&self, values: &[(&str, &str)]) -> String {
        self.render(|name| values.iter().find(|(key, _)| *key == name).map(|(_, value)| *value))
    }

    /// Renders with `value` supplying each placeholder; missing values render empty.
    pub fn render<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Variable(name) => out.push_str(value(name).unwrap_or("")),
            }
        }
        out
    }

    /// Whether the template names this placeholder.
    pub fn uses(&self, name: &str) -> bool {
        self.segments.iter().any(|segment| matches!(segment, Segment::Variable(n) if n == name))
    }

    /// The literal text before the first placeholder (tests use it to tell variants apart).
    pub fn literal_prefix(&self) -> &str {
        match self.segments.first() {
            Some(Segment::Literal(text)) => text,
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_escaped_braces() {
        let template = Template::parse("f", "summary", "A {x} and {{literal}}", &["x"]).unwrap();
        assert_eq!(template.render(|name| (name == "x").then_some("value")), "A value and {literal}");
    }

    #[test]
    fn names_file_field_and_placeholder_in_errors() {
        let error = Template::parse("cards/a.toml", "detail", "Hello {patient_name}", &["x"]).unwrap_err();
        assert_eq!((error.file.as_str(), error.field.as_str()), ("cards/a.toml", "detail"));
        assert!(error.message.contains("patient_name"));
        assert!(Template::parse("f", "s", "open {x", &["x"]).is_err());
        assert!(Template::parse("f", "s", "close }", &["x"]).is_err());
    }
}
