//! Agent-controlled text shown to people (arguments, tool and agent names) with the characters
//! that change how text reads without being seen written out as `\u{202e}`-style escapes: bidi
//! overrides and isolates (which can make `exe.txt` read as `txt.exe`, or reorder an argument
//! past the one a reviewer checks), zero-width spaces and joiners, line and paragraph separators,
//! the byte-order mark, the invisible "tag" characters, and the variation selectors that can
//! smuggle hidden bytes behind a visible character (all but U+FE0F, which asks for an emoji's
//! colour form and is everywhere). What a reviewer reads is what the call carries.

use std::borrow::Cow;

/// Whether `c` is invisible or reorders text around it.
fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0e}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}'
            | '\u{e0100}'..='\u{e01ef}'
    )
}

/// `text` with every hidden character written as `\u{XXXX}` (borrowed when there is none).
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_zero_width_characters_are_written_out() {
        assert_eq!(visible("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(visible("pay\u{200b}pal"), "pay\\u{200b}pal");
        assert_eq!(visible("\u{feff}x\u{2066}y"), "\\u{feff}x\\u{2066}y");
        assert!(matches!(
            visible("plain text, ünïcödé, 日本語 😀 ❤\u{fe0f}"),
            Cow::Borrowed(_)
        ));
        assert_eq!(visible("a\u{e0101}\u{fe01}"), "a\\u{e0101}\\u{fe01}");
    }
}
