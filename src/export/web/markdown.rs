//! Ticket bodies, Markdown, as HTML. The bodies quote the host (process names,
//! command lines, paths, log lines), so nothing in them may become markup: raw HTML
//! is shown as text, images as their alt text (a page must load nothing from
//! elsewhere) and links only keep `http`, `https` and relative targets.

use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};

fn safe_link(dest: &str) -> bool {
    let lower = dest.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // No scheme (relative), or a colon after a path or query character.
        None => true,
        Some((scheme, _)) if scheme.contains(['/', '?', '#']) => true,
        Some((scheme, _)) => matches!(scheme, "http" | "https"),
    }
}

/// The body as HTML, safe to put in a page.
pub fn render(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let mut dropped_links = 0usize;
    let events = Parser::new_ext(markdown, opts).filter_map(|e| match e {
        Event::Html(s) | Event::InlineHtml(s) => Some(Event::Text(s)),
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        Event::Start(Tag::Link { ref dest_url, .. }) if !safe_link(dest_url) => {
            dropped_links += 1;
            None
        }
        Event::End(TagEnd::Link) if dropped_links > 0 => {
            dropped_links -= 1;
            None
        }
        e => Some(e),
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_images_and_script_links_in_a_body_stay_text() {
        let body = "## Top processes\n\n\
            | pid | command |\n|---|---|\n| 42 | <script>alert(1)</script> |\n\n\
            <img src=x onerror=alert(2)>\n\n\
            a `/var/log/<b>` path, ![pic](http://example.invalid/x.png), \
            [bad](javascript:alert(3)) and [good](https://example.org/runbook)\n";
        let html = render(body);
        assert!(html.contains("<h2>Top processes</h2>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(2)&gt;"),
            "{html}"
        );
        assert!(html.contains("<code>/var/log/&lt;b&gt;</code>"), "{html}");
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            !html.contains("javascript:") && html.contains("bad"),
            "{html}"
        );
        assert!(!html.contains("example.invalid"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org/runbook\">good</a>"),
            "{html}"
        );
    }
}
