//! Agent-controlled text shown to people (arguments, tool and agent names) with the characters
//! that change how text reads without being seen written out as `\u{202e}`-style escapes: bidi
//! overrides and isolates (which can make `exe.txt` read as `txt.exe`, or reorder an argument
//! past the one a reviewer checks), zero-width spaces and joiners, the byte-order mark, and the
//! invisible "tag" characters. What a reviewer reads is what the call carries.

use std::borrow::Cow;

/// Whether `c` is invisible or reorders text around it.
fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}'
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
            visible("plain text, ünïcödé, 日本語 😀"),
            Cow::Borrowed(_)
        ));
    }
}
