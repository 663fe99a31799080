//! Card `detail` Markdown as an EHR shows it, rendered on the server. Card text comes from the
//! content files and, in a pasted preview, from whoever pasted it: raw HTML in it is shown as
//! text (escaped), never passed through, and only http(s), mailto and relative links and images
//! become links (a `javascript:` link is shown as its text).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

pub fn to_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    // A link or image with an unsafe destination loses its tag; its end tag must go with it.
    let mut dropped: Vec<bool> = Vec::new();
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            let safe = safe_url(&dest_url);
            dropped.push(!safe);
            safe.then_some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
        }
        Event::Start(Tag::Image { dest_url, .. }) => {
            // Images would load from anywhere when the page is opened: shown as their address.
            dropped.push(true);
            Some(Event::Text(CowStr::from(format!("[image: {dest_url}] "))))
        }
        Event::End(TagEnd::Link | TagEnd::Image) => {
            if dropped.pop().unwrap_or(true) {
                None
            } else {
                Some(Event::End(TagEnd::Link))
            }
        }
        other => Some(other),
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // No scheme before the first `/`, `?` or `#`: a relative link.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_markdown_cards_use() {
        let html = to_html("**Why:** no red flag.\n\n- first\n- second with [ACR](https://acsearch.acr.org/list)\n");
        assert!(html.contains("<strong>Why:</strong>"), "{html}");
        assert!(html.contains("<li>first</li>"), "{html}");
        assert!(html.contains("<a href=\"https://acsearch.acr.org/list\">ACR</a>"), "{html}");
    }

    #[test]
    fn html_in_card_text_is_shown_escaped() {
        let html = to_html("<script>alert(1)</script>\n\nText <img src=x onerror=alert(2)> here");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn unsafe_links_and_images_lose_their_tags() {
        let html =
            to_html("[click](javascript:alert(1)) and [x](JavaScript:evil) and ![i](https://tracker.example/p.png)");
        assert!(!html.to_lowercase().contains("javascript:alert(1)\""), "{html}");
        assert!(!html.contains("<a"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("click"), "the text stays: {html}");
        let html = to_html("[rel](/console/content) [mail](mailto:a@b.example)");
        assert_eq!(html.matches("<a href").count(), 2, "{html}");
    }
}
