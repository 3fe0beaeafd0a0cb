//! Domain values of a notebook, parsed once at the boundary.
//!
//! Ids, user ids, roles and cell types arrive as untrusted strings (URL paths,
//! JSON bodies, database rows). Each has a newtype here whose only constructor
//! validates it, so code past the boundary never re-checks and a bad value is a
//! parse error (400 / serde error), never a panic. All of them serialize as plain
//! JSON strings.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Why a string was not accepted as a domain value. The message is safe to show
/// to clients (it never echoes the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(&'static str);

impl ParseError {
    /// The client-safe message.
    pub fn message(&self) -> &'static str {
        self.0
    }
}

/// Implements `Display`-based `Serialize` and `FromStr`-based `Deserialize`, so
/// a newtype is a plain JSON string and a bad one is a serde error.
macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                raw.parse().map_err(D::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// NotebookId

/// A notebook's id: a random (v4) UUID, so ids cannot be guessed or enumerated.
/// The text form is the hyphenated lowercase UUID, the only form accepted
/// (one URL per notebook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotebookId(Uuid);

impl NotebookId {
    /// A fresh, unguessable id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps a UUID read from a trusted place (e.g. a PostgreSQL `uuid` column).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for NotebookId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for NotebookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for NotebookId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: ParseError = ParseError("invalid notebook id");
        // 36 characters is only ever the hyphenated form; this rejects the
        // simple, braced and urn forms `Uuid::try_parse` would also take.
        // Lower case only, so each notebook has exactly one URL.
        if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(BAD);
        }
        Uuid::try_parse(s).map(Self).map_err(|_| BAD)
    }
}

string_serde!(NotebookId);

// ---------------------------------------------------------------------------
// CellId

/// A cell's id, unique within its notebook. Follows nbformat 4.5:
/// `^[a-zA-Z0-9-_]{1,64}$`, so exported .ipynb files keep the REST ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellId(String);

impl CellId {
    /// Maximum length in characters (nbformat).
    pub const MAX_LEN: usize = 64;

    /// Accepts a client- or database-supplied id that matches the nbformat pattern.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(ok_char) {
            return Err(ParseError("invalid cell id"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh id: the 32 hex digits of a random UUID (unguessable, valid nbformat).
    pub fn generate() -> Self {
        Self(Uuid::new_v4().simple().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CellId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_serde!(CellId);

// ---------------------------------------------------------------------------
// UserId

/// A user's id as Clerk issues it (`user_...`). Kept opaque: any 1..=128
/// characters without whitespace or control characters, because members may be
/// added before they ever sign in and Clerk's format is not ours to assume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 128;

    /// Accepts a user id from a token, a URL or a database row.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if s.is_empty() || s.chars().count() > Self::MAX_LEN || s.chars().any(bad) {
            return Err(ParseError("invalid user id"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_serde!(UserId);

// ---------------------------------------------------------------------------
// MemberId

/// Who a notebook can be shared with: a Clerk user (`user_...`), organization
/// (`org_...`) or machine (`mch_...`). Parsed at the API boundary, so a
/// member id of any other shape is a 400 rather than a share nobody can use.
/// Stored in the same column as user ids, hence [`MemberId::into_id`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberId(UserId);

impl MemberId {
    /// The Clerk prefixes a member id may have.
    pub const PREFIXES: [&'static str; 3] = ["user_", "org_", "mch_"];

    /// Accepts `user_...`, `org_...` or `mch_...` (followed by at least one
    /// character) within [`UserId`]'s rules.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let prefixed = Self::PREFIXES
            .iter()
            .any(|p| s.len() > p.len() && s.starts_with(p));
        if !prefixed {
            return Err(ParseError("invalid member id"));
        }
        UserId::parse(s).map(MemberId)
    }

    /// The id as stored and as carried in membership events.
    pub fn into_id(self) -> UserId {
        self.0
    }
}

// ---------------------------------------------------------------------------
// Role

/// What a user may do with a notebook: owner > editor > viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Created the notebook; may do everything, including delete and share.
    Owner,
    /// May change cells and the title.
    Editor,
    /// May read only.
    Viewer,
}

impl Role {
    /// The higher of two roles (owner > editor > viewer): a caller with
    /// access from several members gets the best of them.
    pub fn max(self, other: Role) -> Role {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The lower of two roles (a scope caps a role at most down to this).
    pub fn min(self, other: Role) -> Role {
        if other.rank() < self.rank() {
            other
        } else {
            self
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Owner => 2,
            Role::Editor => 1,
            Role::Viewer => 0,
        }
    }

    /// Whether this role may apply ops (edit cells, rename).
    pub fn can_write(self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }

    /// The wire / database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            _ => Err(ParseError("invalid role")),
        }
    }
}

// ---------------------------------------------------------------------------
// CellType

/// The nbformat cell types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CellType {
    /// Executable code; the only kind with outputs and an execution count.
    Code,
    /// Markdown text.
    Markdown,
    /// Raw text passed through untouched.
    Raw,
}

impl CellType {
    /// Whether cells of this type carry `outputs` and `execution_count`.
    pub fn is_code(self) -> bool {
        self == CellType::Code
    }

    /// The wire / database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CellType::Code => "code",
            CellType::Markdown => "markdown",
            CellType::Raw => "raw",
        }
    }
}

impl fmt::Display for CellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CellType {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "code" => Ok(CellType::Code),
            "markdown" => Ok(CellType::Markdown),
            "raw" => Ok(CellType::Raw),
            _ => Err(ParseError("invalid cell type")),
        }
    }
}

// ---------------------------------------------------------------------------
// Cell

/// One cell as stored. `version` starts at 1 and is +1 on every change to this
/// cell; clients send it back as `base_version` to detect concurrent edits.
///
/// Serializes to the REST/WebSocket JSON (nbformat-flavoured):
/// `{"id","cell_type","source","metadata",["outputs","execution_count",]"version"}`
/// with `outputs`/`execution_count` only on code cells. `attachments` is never
/// serialized; it is kept only so .ipynb files round-trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Unique within the notebook.
    pub id: CellId,
    /// Code, markdown or raw.
    pub cell_type: CellType,
    /// The cell's text.
    pub source: String,
    /// nbformat cell metadata, replaced as a whole on update.
    pub metadata: Map<String, Value>,
    /// nbformat outputs (always empty for non-code cells).
    pub outputs: Vec<Value>,
    /// nbformat execution count (always `None` for non-code cells).
    pub execution_count: Option<i64>,
    /// nbformat attachments (markdown/raw), for .ipynb round trips only.
    pub attachments: Option<Value>,
    /// Per-cell version, see the type docs.
    pub version: i64,
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let code = self.cell_type.is_code();
        // nbformat: attachments exist on markdown and raw cells only.
        let attachments = self.attachments.as_ref().filter(|_| !code);
        let len = if code {
            7
        } else {
            5 + usize::from(attachments.is_some())
        };
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("cell_type", &self.cell_type)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("metadata", &self.metadata)?;
        if code {
            map.serialize_entry("outputs", &self.outputs)?;
            map.serialize_entry("execution_count", &self.execution_count)?;
        }
        if let Some(attachments) = attachments {
            map.serialize_entry("attachments", attachments)?;
        }
        map.serialize_entry("version", &self.version)?;
        map.end()
    }
}

/// The JSON shape `Cell` is read back from (the op log, Redis fan-out).
#[derive(Deserialize)]
struct CellRepr {
    id: CellId,
    cell_type: CellType,
    source: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    outputs: Vec<Value>,
    #[serde(default)]
    execution_count: Option<i64>,
    #[serde(default)]
    attachments: Option<Value>,
    version: i64,
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let r = CellRepr::deserialize(deserializer)?;
        let mut cell = Cell {
            id: r.id,
            cell_type: r.cell_type,
            source: r.source,
            metadata: r.metadata,
            outputs: r.outputs,
            execution_count: r.execution_count,
            attachments: r.attachments,
            version: r.version,
        };
        cell.normalize();
        Ok(cell)
    }
}

impl Cell {
    /// Enforces the nbformat invariant: only code cells have outputs and an
    /// execution count.
    pub fn normalize(&mut self) {
        if !self.cell_type.is_code() {
            self.outputs.clear();
            self.execution_count = None;
        }
    }
}

// ---------------------------------------------------------------------------
// Notebook

/// Everything about a notebook except its cells: what lists and access checks need.
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookMeta {
    /// The notebook's id.
    pub id: NotebookId,
    /// Display title (1..=`Limits::max_title_chars` characters).
    pub title: String,
    /// Who created it; always has [`Role::Owner`].
    pub owner_id: UserId,
    /// Creation time (microsecond precision, as stored).
    pub created_at: DateTime<Utc>,
    /// Time of the last op (or creation).
    pub updated_at: DateTime<Utc>,
    /// 0 at creation, +1 per op.
    pub version: i64,
    /// Changes only when version continuity cannot be proven (op log reset,
    /// restore, re-import); clients resume only within one epoch.
    pub epoch: String,
    /// The .ipynb top-level metadata, kept for round trips.
    pub metadata: Map<String, Value>,
}

/// A notebook with its cells in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Notebook {
    /// Title, owner, version, ...
    pub meta: NotebookMeta,
    /// The cells, position 0 first.
    pub cells: Vec<Cell>,
}

/// Size limits enforced on every change (each configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum title length in characters.
    pub max_title_chars: usize,
    /// Maximum cell source size in UTF-8 bytes.
    pub max_source_bytes: usize,
    /// Maximum number of cells in one notebook.
    pub max_cells: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_title_chars: 200,
            max_source_bytes: 1024 * 1024,
            max_cells: 5000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notebook_id_round_trips_and_is_random() {
        let a = NotebookId::new();
        let b = NotebookId::new();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<NotebookId>(), Ok(a));
        assert_eq!(a.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn notebook_id_rejects_non_hyphenated_and_junk() {
        let id = NotebookId::new();
        let simple = id.as_uuid().simple().to_string();
        let braced = id.as_uuid().braced().to_string();
        let urn = id.as_uuid().urn().to_string();
        for bad in [
            "",
            "x",
            "not-a-uuid",
            simple.as_str(),
            braced.as_str(),
            urn.as_str(),
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
            "../../../../../../etc/passwd/aaaaaa",
        ] {
            assert!(bad.parse::<NotebookId>().is_err(), "{bad:?} accepted");
        }
        // Upper case would be a second URL for the same notebook.
        let upper = id.to_string().to_uppercase();
        assert!(upper.parse::<NotebookId>().is_err());
    }

    #[test]
    fn notebook_id_serde_is_a_string() {
        let id = NotebookId::new();
        let v = serde_json::to_value(id).unwrap();
        assert_eq!(v, json!(id.to_string()));
        assert_eq!(serde_json::from_value::<NotebookId>(v).unwrap(), id);
        assert!(serde_json::from_value::<NotebookId>(json!("nope")).is_err());
        assert!(serde_json::from_value::<NotebookId>(json!(5)).is_err());
    }

    #[test]
    fn cell_id_pattern() {
        for ok in ["a", "A-b_9", &"x".repeat(64), "0", "-", "_"] {
            assert!(CellId::parse(ok).is_ok(), "{ok:?} rejected");
        }
        for bad in ["", &"x".repeat(65), "a b", "a/b", "é", "a.b", "a\n", "ａ"] {
            assert!(CellId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cell_id_generate_is_32_hex() {
        let id = CellId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(CellId::parse(id.as_str()).is_ok());
        assert_ne!(id, CellId::generate());
    }

    #[test]
    fn cell_id_serde() {
        let id = CellId::parse("abc").unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), json!("abc"));
        assert!(serde_json::from_value::<CellId>(json!("a b")).is_err());
    }

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("user_2abc").is_ok());
        assert!(UserId::parse(&"é".repeat(128)).is_ok());
        for bad in [
            "",
            " ",
            "a b",
            "a\tb",
            "a\u{0}b",
            "a\u{7f}",
            &"u".repeat(129),
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
        let u = UserId::parse("user_1").unwrap();
        assert_eq!(serde_json::to_value(&u).unwrap(), json!("user_1"));
        assert!(serde_json::from_value::<UserId>(json!("")).is_err());
    }

    #[test]
    fn role_parse_serde_and_write() {
        assert_eq!("owner".parse(), Ok(Role::Owner));
        assert_eq!("editor".parse(), Ok(Role::Editor));
        assert_eq!("viewer".parse(), Ok(Role::Viewer));
        assert!("Editor".parse::<Role>().is_err());
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::Owner.can_write() && Role::Editor.can_write());
        assert!(!Role::Viewer.can_write());
        assert_eq!(serde_json::to_value(Role::Editor).unwrap(), json!("editor"));
        assert!(serde_json::from_value::<Role>(json!("root")).is_err());
        for r in [Role::Owner, Role::Editor, Role::Viewer] {
            assert_eq!(r.as_str().parse(), Ok(r));
        }
    }

    #[test]
    fn cell_type_parse_and_serde() {
        for t in [CellType::Code, CellType::Markdown, CellType::Raw] {
            assert_eq!(t.as_str().parse(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert!(serde_json::from_value::<CellType>(json!("heading")).is_err());
    }

    fn cell(cell_type: CellType) -> Cell {
        Cell {
            id: CellId::parse("c1").unwrap(),
            cell_type,
            source: "x = 1".into(),
            metadata: Map::new(),
            outputs: vec![json!({"output_type": "stream"})],
            execution_count: Some(3),
            attachments: Some(json!({"a.png": {}})),
            version: 2,
        }
    }

    #[test]
    fn code_cell_json_has_outputs_and_no_attachments() {
        let v = serde_json::to_value(cell(CellType::Code)).unwrap();
        assert_eq!(
            v,
            json!({"id": "c1", "cell_type": "code", "source": "x = 1", "metadata": {},
                   "outputs": [{"output_type": "stream"}], "execution_count": 3, "version": 2})
        );
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "cell_type",
                "source",
                "metadata",
                "outputs",
                "execution_count",
                "version"
            ]
        );
    }

    #[test]
    fn markdown_cell_json_has_no_outputs_but_its_attachments() {
        // The page resolves `attachment:a.png` images from them.
        let v = serde_json::to_value(cell(CellType::Markdown)).unwrap();
        assert_eq!(
            v,
            json!({"id": "c1", "cell_type": "markdown", "source": "x = 1", "metadata": {},
                   "attachments": {"a.png": {}}, "version": 2})
        );
        let plain = Cell {
            attachments: None,
            ..cell(CellType::Markdown)
        };
        let v = serde_json::to_value(plain).unwrap();
        assert_eq!(
            v,
            json!({"id": "c1", "cell_type": "markdown", "source": "x = 1", "metadata": {}, "version": 2})
        );
    }

    #[test]
    fn cell_deserializes_and_normalizes() {
        let c: Cell = serde_json::from_value(json!({
            "id": "c1", "cell_type": "code", "source": "", "metadata": {"k": 1},
            "outputs": [], "execution_count": null, "version": 1
        }))
        .unwrap();
        assert_eq!(c.metadata.get("k"), Some(&json!(1)));
        let m: Cell = serde_json::from_value(json!({
            "id": "c1", "cell_type": "raw", "source": "", "outputs": [1], "execution_count": 2,
            "version": 1
        }))
        .unwrap();
        assert!(m.outputs.is_empty() && m.execution_count.is_none());
        assert!(
            serde_json::from_value::<Cell>(json!({"id": "a b", "cell_type": "code",
            "source": "", "version": 1}))
            .is_err()
        );
    }

    #[test]
    fn limits_defaults() {
        let l = Limits::default();
        assert_eq!(
            (l.max_title_chars, l.max_source_bytes, l.max_cells),
            (200, 1 << 20, 5000)
        );
    }
}
