//! The classifier's data: which words, phrases and field names suggest that a tool hands over a
//! credential or does something destructive. Kept apart from the matching code so that a new
//! signal is one table row, and so the tables can be read (and argued with) on their own.
//!
//! Names are split into lower-case words (`exportSession`, `export-session` and `export_session`
//! are all `export session`); descriptions are matched case-insensitively, English by whole
//! words and Chinese by substring. Measured against `tests/data/risk_tools.jsonl` (README,
//! "Risk classifier"); every row here is there because a real tool needed it.

/// Nouns that name an authenticating secret wherever they appear in a tool's name.
pub const CREDENTIAL_NOUNS: &[&str] = &[
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "credential",
    "credentials",
    "creds",
    "apikey",
    "apikeys",
    "privatekey",
    "mnemonic",
    "cookie",
    "cookies",
    "otp",
    "totp",
    "jwt",
    "keypair",
    "keyvault",
];

/// Two-word names of secrets (`api key`, `access token`, `session string`, ...).
pub const CREDENTIAL_PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("api", "keys"),
    ("api", "token"),
    ("api", "tokens"),
    ("access", "key"),
    ("access", "keys"),
    ("access", "token"),
    ("access", "tokens"),
    ("auth", "token"),
    ("auth", "code"),
    ("bearer", "token"),
    ("refresh", "token"),
    ("oauth", "token"),
    ("id", "token"),
    ("session", "string"),
    ("session", "token"),
    ("session", "key"),
    ("secret", "key"),
    ("secret", "value"),
    ("private", "key"),
    ("private", "keys"),
    ("signing", "key"),
    ("ssh", "key"),
    ("seed", "phrase"),
    ("recovery", "phrase"),
    ("recovery", "code"),
    ("recovery", "codes"),
    ("backup", "codes"),
    ("login", "code"),
    ("verification", "code"),
    ("connection", "string"),
    ("anon", "key"),
    ("publishable", "key"),
    ("publishable", "keys"),
    ("service", "key"),
    ("client", "secret"),
];

/// Nouns that are a credential only when the tool's first word hands something out
/// ([`EXPORT_VERBS`]): `get_secret`, `create_token`, `export_session`, but not `list_sessions`,
/// `get_token_price` (more words follow) or `secret_scanning_alerts`.
pub const BARE_NOUNS: &[&str] = &[
    "secret", "secrets", "token", "tokens", "session", "sessions", "env",
];

/// Words of a name that make it take, change or remove a secret rather than hand one out
/// (`delete_api_key`, `set_cookie`, `test_api_key`, `wallet_from_private_key`, `passwd_login`).
pub const NOT_HANDING_OUT: &[&str] = &[
    "delete", "remove", "clear", "set", "update", "edit", "revoke", "test", "validate", "verify",
    "check", "import", "add", "from", "login", "logout", "signin", "strength", "leaked",
];

/// A verb and a secret noun that together make or store a secret nobody is handed access by: a
/// random password from a generator, a vault entry for a password the caller supplies.
pub const MADE_NOT_HANDED: &[(&str, &str)] = &[
    ("generate", "password"),
    ("generate", "passwords"),
    ("generate", "passphrase"),
    ("create", "password"),
    ("create", "secret"),
    ("create", "secrets"),
];

/// Words of a description sentence that say a secret is not handed out ("Never returns secret
/// values", "Sensitive fields are redacted").
pub const NEGATIONS_EN: &[&str] = &[
    "never",
    "not",
    "without",
    "redacted",
    "masked",
    "hidden",
    "excluding",
    "omits",
    "omitted",
];

/// The same in Chinese.
pub const NEGATIONS_ZH: &[&str] = &["不会", "不返回", "不包含", "隐藏", "脱敏"];

/// First words of a name that hand something out.
pub const EXPORT_VERBS: &[&str] = &[
    "export",
    "get",
    "read",
    "fetch",
    "retrieve",
    "reveal",
    "show",
    "dump",
    "copy",
    "print",
    "create",
    "generate",
    "issue",
    "mint",
    "new",
    "rotate",
    "regenerate",
    "decrypt",
    "unseal",
];

/// Things a `run` acts on that are harmless (`run_query`, `run_tests`); anything else it runs
/// (code, a command, a script) is destructive.
pub const HARMLESS_RUNS: &[&str] = &[
    "query", "queries", "test", "tests", "lint", "analysis", "report",
];

/// Words after a secret noun of [`CREDENTIAL_NOUNS`] or [`CREDENTIAL_PAIRS`] that make the name
/// about something else (`leaked_credentials_data`, `password_strength`, `secret_scanning_alert`).
pub const NOT_A_SECRET_AFTER_STRONG: &[&str] = &[
    "data",
    "scanning",
    "alert",
    "alerts",
    "policy",
    "policies",
    "strength",
    "requirements",
];

/// Words of a name that hand a fresh secret out even beside a [`NOT_HANDING_OUT`] word
/// (`update_regenerate_api_keys`).
pub const MINTING: &[&str] = &["regenerate", "rotate", "reissue"];

/// Words that come just before a secret phrase when the tool takes the secret rather than hands
/// it out ("from a private key", "log in with a password").
pub const TAKEN_BEFORE: &[&str] = &[
    "from",
    "from a",
    "from an",
    "from the",
    "with",
    "with a",
    "with an",
    "with the",
    "using",
    "using a",
    "using an",
    "using the",
    "by",
    "via",
    "requires",
    "requires a",
    "requires an",
];

/// Description words that make `token` a coin and `session` a trading one: a bare noun in the
/// name (`get_token`) is then not a secret.
pub const COIN_CONTEXT: &[&str] = &[
    "price",
    "prices",
    "chain",
    "chains",
    "swap",
    "swaps",
    "blockchain",
    "erc20",
    "decimals",
    "crypto",
    "coin",
    "coins",
    "defi",
    "liquidity",
];

/// Secret-naming phrases in descriptions (English, lower case, matched as whole words).
pub const CREDENTIAL_PHRASES_EN: &[&str] = &[
    "session string",
    "api key",
    "api keys",
    "api token",
    "access token",
    "access tokens",
    "refresh token",
    "bearer token",
    "auth token",
    "authentication token",
    "oauth token",
    "personal access token",
    "private key",
    "private keys",
    "secret key",
    "secret value",
    "secret values",
    "seed phrase",
    "recovery phrase",
    "mnemonic",
    "password",
    "passwords",
    "credentials",
    "cookies",
    "login code",
    "verification code",
    "one-time code",
    "2fa code",
    "connection string",
    "anon key",
    "service role key",
    "client secret",
];

/// Secret-naming phrases in descriptions (Chinese and mixed spellings, matched as substrings).
pub const CREDENTIAL_PHRASES_ZH: &[&str] = &[
    "session字符串",
    "session 字符串",
    "会话字符串",
    "令牌",
    "密码",
    "密钥",
    "私钥",
    "秘钥",
    "凭证",
    "凭据",
    "助记词",
    "验证码",
    "登录码",
];

/// Verbs of a description sentence that hand a secret out; one must come before the phrase.
pub const EXPORT_WORDS_EN: &[&str] = &[
    "export",
    "exports",
    "exporting",
    "return",
    "returns",
    "returning",
    "reveal",
    "reveals",
    "retrieve",
    "retrieves",
    "get",
    "gets",
    "fetch",
    "fetches",
    "show",
    "shows",
    "display",
    "displays",
    "read",
    "reads",
    "output",
    "outputs",
    "print",
    "prints",
    "dump",
    "dumps",
    "copy",
    "copies",
    "generate",
    "generates",
    "create",
    "creates",
    "issue",
    "issues",
    "mint",
    "mints",
    "decrypt",
    "decrypts",
    "obtain",
    "obtains",
    "provide",
    "provides",
    "extract",
    "extracts",
];

/// The same in Chinese.
pub const EXPORT_WORDS_ZH: &[&str] = &[
    "导出", "获取", "返回", "生成", "查看", "显示", "读取", "提取", "复制", "输出", "创建", "取得",
];

/// Output fields that carry a secret (names split into words, as tool names are).
pub const CREDENTIAL_FIELDS: &[&str] = &[
    "session string",
    "token",
    "access token",
    "refresh token",
    "id token",
    "api key",
    "apikey",
    "password",
    "secret",
    "client secret",
    "private key",
    "privatekey",
    "cookie",
    "cookies",
    "mnemonic",
    "seed phrase",
    "otp",
    "connection string",
];

/// Verbs that make a tool destructive wherever they appear in its name (unless the name starts
/// with a [`READ_VERBS`] word: `list_deleted_items` reads).
pub const DESTRUCTIVE_VERBS: &[&str] = &[
    "delete",
    "remove",
    "rm",
    "destroy",
    "purge",
    "wipe",
    "erase",
    "truncate",
    "drop",
    "kill",
    "terminate",
    "revoke",
    "ban",
    "kick",
    "unban",
    "send",
    "reply",
    "forward",
    "broadcast",
    "clear",
    "write",
    "finalize",
    "approve",
    "deny",
    "upsert",
    "run",
    "publish",
    "tweet",
    "email",
    "pay",
    "charge",
    "refund",
    "transfer",
    "withdraw",
    "purchase",
    "buy",
    "sell",
    "swap",
    "invite",
    "grant",
    "execute",
    "exec",
    "deploy",
    "overwrite",
    "reset",
    "uninstall",
    "unpublish",
    "void",
    "cancel",
    "disable",
    "promote",
    "demote",
    "shutdown",
    "reboot",
    "restart",
    "stop",
    "rollback",
    "force",
    "evaluate",
    "eval",
];

/// Verbs that are destructive only as a name's first word (`post_message`, not `get_post`).
pub const DESTRUCTIVE_FIRST_VERBS: &[&str] = &[
    "post", "push", "merge", "share", "block", "leave", "move", "rename", "close", "set", "assign",
    "update", "edit", "replace", "spam",
];

/// Words after a first-word verb of [`DESTRUCTIVE_FIRST_VERBS`] that keep it harmless: an update
/// of a draft or a local note, a move of the mouse.
pub const HARMLESS_OBJECTS: &[&str] = &[
    "draft",
    "drafts",
    "note",
    "notes",
    "memory",
    "memories",
    "observation",
    "observations",
    "entities",
    "entity",
    "relations",
    "label",
    "labels",
    "tag",
    "tags",
    "reaction",
    "emoji",
    "mouse",
    "cursor",
    "viewport",
    "tab",
    "tabs",
    "page",
    "todo",
    "todos",
    "comment",
    "status",
    "profile",
    "bookmark",
    "bookmarks",
    "query",
    "queries",
    "script",
    "test",
    "tests",
    "lint",
    "analysis",
    "search",
    "reminder",
    "preferences",
    "settings",
    "reactions",
    "alias",
];

/// First words of names that only read: such a tool is never destructive by its other words.
pub const READ_VERBS: &[&str] = &[
    "get",
    "list",
    "search",
    "read",
    "find",
    "fetch",
    "show",
    "describe",
    "view",
    "query",
    "check",
    "count",
    "lookup",
    "browse",
    "inspect",
    "preview",
    "explain",
    "analyze",
    "download",
    "export",
    "retrieve",
    "validate",
    "verify",
    "estimate",
    "simulate",
    "calculate",
    "is",
    "has",
    "can",
    "watch",
    "monitor",
    "summarize",
    "diff",
    "compare",
    "test",
    "ping",
    "echo",
];

/// Destructive phrases in descriptions (English, whole words).
pub const DESTRUCTIVE_PHRASES_EN: &[&str] = &[
    "permanently delete",
    "permanently deletes",
    "irreversibly",
    "cannot be undone",
    "can not be undone",
    "deletes",
    "delete a",
    "delete the",
    "delete an",
    "delete one",
    "delete all",
    "removes",
    "sends a",
    "sends an",
    "send a",
    "send an",
    "send messages",
    "transfer funds",
    "transfers funds",
    "charges",
    "refunds",
    "execute arbitrary",
    "executes arbitrary",
    "execute a shell",
    "execute shell",
    "executes a shell",
    "run a shell",
    "runs a shell",
    "overwrite",
    "overwrites",
];

/// Destructive phrases in descriptions (Chinese, substrings).
pub const DESTRUCTIVE_PHRASES_ZH: &[&str] = &[
    "删除",
    "移除",
    "清空",
    "发送",
    "群发",
    "转账",
    "支付",
    "付款",
    "退款",
    "封禁",
    "踢出",
    "撤销",
    "执行命令",
    "覆盖",
    "注销",
    "转发",
    "发布",
    "禁言",
    "撤回",
];
