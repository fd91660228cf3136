//! The fake Telegram account behind the demo upstream: a profile and a few chats with messages,
//! held in memory for the life of the process. Every MCP session of one process shares the same
//! account, so a message sent through one client shows up for the next, the way a real account would.
//! Chats are kept most recently active first, which is the order Telegram lists dialogs in.

use serde::Serialize;

/// How many messages `get_messages` returns when the caller gives no limit.
pub(super) const DEFAULT_MESSAGE_LIMIT: usize = 20;

/// The account owner, as served by the `telegram://account/profile` resource.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Profile {
    id: i64,
    first_name: &'static str,
    last_name: &'static str,
    username: &'static str,
    phone: &'static str,
    premium: bool,
    dc_id: u8,
}

/// One line of `get_chats`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ChatSummary {
    pub(super) id: i64,
    pub(super) title: String,
    pub(super) unread: u32,
}

/// One message as the tools return it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Message {
    pub(super) id: i64,
    pub(super) from: String,
    pub(super) date: String,
    pub(super) text: String,
}

struct Chat {
    id: i64,
    title: String,
    unread: u32,
    messages: Vec<Message>,
}

impl Chat {
    fn summary(&self) -> ChatSummary {
        ChatSummary {
            id: self.id,
            title: self.title.clone(),
            unread: self.unread,
        }
    }
}

pub(super) struct Account {
    profile: Profile,
    chats: Vec<Chat>,
}

impl Account {
    /// The demo account: a colleague, a team group, a bot and Telegram's own service chat (whose
    /// login code is the kind of secret an agent should never be able to read out unnoticed).
    pub(super) fn demo() -> Self {
        let me = "Dana Demo";
        Self {
            profile: Profile {
                id: 6_021_554_310,
                first_name: "Dana",
                last_name: "Demo",
                username: "dana_demo",
                phone: "+999 66 1 2345",
                premium: false,
                dc_id: 5,
            },
            chats: vec![
                chat(
                    1_297_381_004,
                    "Alice Martin",
                    2,
                    &[
                        (
                            me,
                            "2026-03-02T08:55:10Z",
                            "Morning! Did the gateway build pass?",
                        ),
                        ("Alice Martin", "2026-03-02T09:12:41Z", "Yes, all green."),
                        (
                            "Alice Martin",
                            "2026-03-02T09:14:03Z",
                            "Can you send me the staging URL when you have a minute?",
                        ),
                    ],
                ),
                chat(
                    -1_001_846_223_907,
                    "Airlock Team",
                    5,
                    &[
                        (
                            "Bob Okafor",
                            "2026-03-01T17:30:00Z",
                            "Reminder: demo on Thursday at 15:00.",
                        ),
                        (
                            "Chen Wei",
                            "2026-03-01T17:42:19Z",
                            "I'll bring the approval dashboard.",
                        ),
                        (
                            me,
                            "2026-03-01T18:01:55Z",
                            "I'll cover the Telegram upstream.",
                        ),
                    ],
                ),
                chat(
                    777_000,
                    "Telegram",
                    1,
                    &[(
                        "Telegram",
                        "2026-02-28T21:07:12Z",
                        "Login code: 52981. Do not give this code to anyone, even if they say \
                         they are from Telegram!",
                    )],
                ),
                chat(
                    5_540_118_662,
                    "Weather Bot",
                    0,
                    &[
                        (me, "2026-02-27T07:00:02Z", "/forecast Berlin"),
                        (
                            "Weather Bot",
                            "2026-02-27T07:00:03Z",
                            "Berlin: 4 °C, light rain.",
                        ),
                    ],
                ),
            ],
        }
    }

    pub(super) fn profile(&self) -> &Profile {
        &self.profile
    }

    pub(super) fn chats(&self, limit: Option<usize>) -> Vec<ChatSummary> {
        let limit = limit.unwrap_or(self.chats.len());
        self.chats.iter().take(limit).map(Chat::summary).collect()
    }

    pub(super) fn chat_title(&self, chat_id: i64) -> Option<&str> {
        self.chat(chat_id).map(|chat| chat.title.as_str())
    }

    /// The most recent `limit` messages of a chat, oldest first; `None` for an unknown chat.
    pub(super) fn messages(&self, chat_id: i64, limit: usize) -> Option<Vec<Message>> {
        let chat = self.chat(chat_id)?;
        let skip = chat.messages.len().saturating_sub(limit);
        Some(chat.messages[skip..].to_vec())
    }

    /// Appends a message from the account owner and moves the chat to the top of the list.
    /// `None` for an unknown chat.
    pub(super) fn send(&mut self, chat_id: i64, text: String, date: String) -> Option<Message> {
        let index = self.chats.iter().position(|chat| chat.id == chat_id)?;
        let mut chat = self.chats.remove(index);
        let id = chat.messages.last().map_or(1, |last| last.id + 1);
        let message = Message {
            id,
            from: self.profile_name(),
            date,
            text,
        };
        chat.messages.push(message.clone());
        self.chats.insert(0, chat);
        Some(message)
    }

    /// Removes a chat and returns its title; `None` for an unknown chat.
    pub(super) fn delete_chat(&mut self, chat_id: i64) -> Option<String> {
        let index = self.chats.iter().position(|chat| chat.id == chat_id)?;
        Some(self.chats.remove(index).title)
    }

    fn chat(&self, chat_id: i64) -> Option<&Chat> {
        self.chats.iter().find(|chat| chat.id == chat_id)
    }

    fn profile_name(&self) -> String {
        format!("{} {}", self.profile.first_name, self.profile.last_name)
    }
}

/// Builds a chat whose message ids count up from 1, as in a private Telegram chat.
fn chat(id: i64, title: &str, unread: u32, messages: &[(&str, &str, &str)]) -> Chat {
    Chat {
        id,
        title: title.to_owned(),
        unread,
        messages: (1..)
            .zip(messages)
            .map(|(id, (from, date, text))| Message {
                id,
                from: (*from).to_owned(),
                date: (*date).to_owned(),
                text: (*text).to_owned(),
            })
            .collect(),
    }
}

/// A string laid out like a Telethon `StringSession`: `1` followed by the URL-safe base64 of the
/// data centre id, its IPv4 address, the port and a 256-byte auth key. The address lies in
/// Telegram's 91.108.56.0/22 range, which gives the `1BVtsOK` prefix real strings often start
/// with; the key is random, so the string differs per process and authorises nothing.
pub(super) fn fake_session_string() -> Result<String, getrandom::Error> {
    let mut auth_key = [0u8; 256];
    getrandom::fill(&mut auth_key)?;
    let mut raw = Vec::with_capacity(1 + 4 + 2 + auth_key.len());
    raw.push(5);
    raw.extend_from_slice(&[91, 108, 56, 170]);
    raw.extend_from_slice(&443u16.to_be_bytes());
    raw.extend_from_slice(&auth_key);
    Ok(format!("1{}", base64url(&raw)))
}

/// URL-safe base64 with padding, as Python's `base64.urlsafe_b64encode` (which Telethon uses)
/// writes it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for sextet in 0..4 {
            if sextet <= chunk.len() {
                let index = (group >> (18 - 6 * sextet)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_python_urlsafe_b64encode() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg==");
        assert_eq!(base64url(b"fo"), "Zm8=");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8=");
    }
}
