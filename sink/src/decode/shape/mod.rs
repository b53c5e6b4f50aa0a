//! Payloads read by their shape. A topic's Debezium payloads have the same members in the same
//! order, with the same text between their values (`,"after":{"id":`), event after event. A
//! [`Shape`] is that text, learned from one payload read in full, with a slot for each value. A
//! payload of a known shape is read by comparing the text and scanning only the values: a
//! fraction of what a JSON parser does over the same bytes, most of which are member names.
//! Values floe ignores that repeat from payload to payload (most of the `source` block) are
//! compared as part of that text too, once two payloads in a row agree on them ([`Repeats`]).
//!
//! A shape makes reading faster, never different. A payload that differs from every known shape
//! in any byte between its values, or has a value the scan does not vouch for, is read in full by
//! serde_json ([`read_payload`](super::payload::read_payload)), and a payload so read teaches a
//! new shape. Values that need more than a scan (escaped strings, fractions, objects, arrays)
//! are parsed by serde_json on their own, so every value is what serde_json makes of it.
//!
//! A shape reads a payload in either [`Form`]: as JSON, or still escaped inside a JSON string
//! (an NDJSON line's value, whose escapes then cost nothing but a compare of the shape's own
//! text escaped alike). [`plain`] and [`escaped`] scan values in each form.

mod escaped;
mod plain;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use self::plain::{string_len, value_len};
use super::json_object::{field_of, Members};
use super::payload::{source_micros, Image, Payload};
use super::Columns;
use crate::json_text::space_trimmed;

/// The payload shapes one decoder has learned, the most recently used first.
#[derive(Debug, Default)]
pub struct Shapes {
    known: Vec<Shape>,
}

/// How many shapes a decoder keeps: a few per topic (a delete's payload is shaped unlike an
/// update's) for a few topics interleaved. Trying a shape that does not fit costs a compare of
/// its first differing bytes.
const MAX_SHAPES: usize = 16;

impl Shapes {
    /// Reads the payload `text` by a known shape for the `after` image's `fields`, as
    /// [`read_payload`](super::payload::read_payload) would: the image into `values`
    /// (`values[i]` for `fields[i]`). `None` when no known shape fits; `values` then holds
    /// whatever the last shape tried had read.
    pub fn read<'a>(&mut self, text: &'a str, form: Form, fields: &Columns, values: &mut Vec<Value>) -> Option<Payload<'a>> {
        for at in 0..self.known.len() {
            if !self.known[at].is_for(fields) {
                continue;
            }
            if let Some(payload) = self.known[at].read(text, form, values) {
                self.known[..=at].rotate_right(1);
                return Some(payload);
            }
        }
        None
    }

    /// Learns the shape of `text`, a payload that was just read in full with `fields`. A
    /// payload whose `after` is not an object, whose `source` is not one, or that names a member
    /// floe reads twice is not learned: it is left to serde_json.
    pub fn learn(&mut self, text: &str, fields: &Columns) {
        if let Some(shape) = Shape::learn(text, fields) {
            self.known.truncate(MAX_SHAPES - 1);
            self.known.insert(0, shape);
        }
    }
}

/// Reads the JSON object `text` as [`read_object`](super::json_object::read_object) does, when
/// it is written as Debezium writes a key: `fields`' members, each once and in their order,
/// nothing else, and no whitespace but after the object. `None` for any other text, which is
/// left to serde_json. A key was a tenth of the decoder's work when serde_json read each.
pub fn read_in_order(text: &str, fields: &[super::Field], values: &mut Vec<Value>) -> Option<Members> {
    values.clear();
    let mut rest = text.strip_prefix('{')?;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(',')?;
        }
        // A name written with escapes is not compared as written.
        let name = Some(field.name.as_str()).filter(|name| name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'))?;
        rest = rest.strip_prefix('"')?.strip_prefix(name)?.strip_prefix("\":")?;
        let len = value_len(rest)?;
        values.push(plain::to_value(&rest[..len])?);
        rest = &rest[len..];
    }
    let after = rest.strip_prefix('}')?;
    after.bytes().all(crate::json_text::is_space).then_some(Members { members: fields.len(), matched: fields.len() })
}

/// How a payload's text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// As JSON.
    Plain,
    /// Escaped as the content of a JSON string, its escapes not yet checked: an NDJSON line's
    /// value, as the line parser hands it over ([`crate::source::ValueHead`]). Only `\"` and
    /// `\\` are read as escapes here; a payload escaped otherwise (`\u00e9` for `é`) fits no
    /// shape, and is unescaped and read as JSON.
    Escaped,
}

impl Form {
    fn value_len(self, rest: &str) -> Option<usize> {
        match self {
            Form::Plain => value_len(rest),
            Form::Escaped => escaped::value_len(rest),
        }
    }

    fn to_value(self, value: &str) -> Option<Value> {
        match self {
            Form::Plain => plain::to_value(value),
            Form::Escaped => escaped::to_value(value),
        }
    }

    fn op_value(self, value: &str) -> Option<Option<Cow<'_, str>>> {
        match self {
            Form::Plain => plain::op_value(value),
            Form::Escaped => escaped::op_value(value),
        }
    }

    fn before_value(self, value: &str) -> Option<Option<&RawValue>> {
        match self {
            Form::Plain => plain::before_value(value),
            // A `before` image, borrowed as JSON text, would need the text unescaped first.
            Form::Escaped => (value == "null").then_some(None),
        }
    }

    /// Whether `byte` is whitespace written in this form.
    pub fn is_space(self, byte: u8) -> bool {
        match self {
            Form::Plain => crate::json_text::is_space(byte),
            // Other whitespace in a string is escaped (`\n`), and a raw one is not valid there.
            Form::Escaped => byte == b' ',
        }
    }
}

/// The text of a payload between its values, and what each value is.
#[derive(Debug)]
struct Shape {
    /// The `after` fields its image's members were matched with.
    fields: Columns,
    slots: Vec<Slot>,
    /// The text after the last value: the payload's closing braces.
    tail: Text,
    /// How many members its `after` image has, and how many of them are fields.
    after_members: Members,
    repeats: Repeats,
}

/// The values floe ignores that repeat from payload to payload. Most of a Debezium `source`
/// block is the same on every event of a table (`version`, `connector`, `db`, `schema`,
/// `table`, `snapshot`, a null `xmin`), and so is a null `transaction`: a shape that has seen
/// two payloads in a row agree on such values compares them as part of its text instead of
/// scanning each (a third of a payload's slots). When one changes, the payload is read by the
/// values' slots as before, and the shape looks again later.
#[derive(Debug)]
enum Repeats {
    /// The last payload's ignored values, in the form it was read in, to compare with the
    /// next payload's.
    Candidates(Form, Vec<Box<str>>),
    Merged(Merged),
    /// Payloads to read before looking for repeated values again.
    Waiting(u32),
}

/// Payloads a shape reads by its slots after its repeated values changed (or none repeated),
/// before it looks again: looking costs a copy of the ignored values, twice.
const LOOK_AGAIN_AFTER: u32 = 256;

/// A shape's slots in one form, with the repeated values written into the text around them.
#[derive(Debug)]
struct Merged {
    form: Form,
    slots: Vec<(Box<str>, Target)>,
    tail: Box<str>,
}

/// A value, and the text that comes before it.
#[derive(Debug)]
struct Slot {
    text: Text,
    target: Target,
}

/// A shape's text between two values, in each [`Form`].
#[derive(Debug)]
struct Text {
    plain: Box<str>,
    escaped: Box<str>,
}

impl Text {
    fn new(plain: &str) -> Self {
        let quoted = serde_json::to_string(plain).expect("a string");
        Self { plain: plain.into(), escaped: quoted[1..quoted.len() - 1].into() }
    }

    fn of(&self, form: Form) -> &str {
        match form {
            Form::Plain => &self.plain,
            Form::Escaped => &self.escaped,
        }
    }
}

/// What a value is read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ignored,
    Before,
    After(usize),
    Op,
    SourceTsUs,
    SourceTsMs,
}

impl Shape {
    fn is_for(&mut self, fields: &Columns) -> bool {
        if Arc::ptr_eq(&self.fields, fields) {
            return true;
        }
        // The same fields decoded again (another topic's schema came between): the next
        // payload needs no compare of them.
        let same = self.fields == *fields;
        if same {
            self.fields = fields.clone();
        }
        same
    }

    /// Reads `text` by the merged text when it has one for `form`, else (or when a repeated
    /// value changed) by the slots, looking for repeated values on the way.
    fn read<'a>(&mut self, text: &'a str, form: Form, values: &mut Vec<Value>) -> Option<Payload<'a>> {
        let merged_missed = match &self.repeats {
            Repeats::Merged(merged) if merged.form == form => {
                let slots = merged.slots.iter().map(|(text, target)| (&**text, *target));
                match self.read_by(slots, &merged.tail, text, form, values, None) {
                    Some(payload) => return Some(payload),
                    None => true,
                }
            }
            _ => false,
        };
        let looking = matches!(self.repeats, Repeats::Candidates(..) | Repeats::Waiting(0));
        let mut ignored = vec![];
        let slots = self.slots.iter().map(|slot| (slot.text.of(form), slot.target));
        let payload = self.read_by(slots, self.tail.of(form), text, form, values, looking.then_some(&mut ignored))?;
        // Only a payload of this shape says a repeated value changed.
        if merged_missed {
            self.repeats = Repeats::Waiting(LOOK_AGAIN_AFTER);
        } else {
            self.look_for_repeats(form, ignored);
        }
        Some(payload)
    }

    /// Reads a payload by `slots` (the text before each value, and what the value is) and `tail`,
    /// in `form`, into `values`; the values of ignored slots are pushed to `ignored`, when given.
    fn read_by<'a, 's>(
        &self,
        slots: impl Iterator<Item = (&'s str, Target)>,
        tail: &str,
        text: &'a str,
        form: Form,
        values: &mut Vec<Value>,
        mut ignored: Option<&mut Vec<&'a str>>,
    ) -> Option<Payload<'a>> {
        values.clear();
        values.resize(self.fields.len(), Value::Null);
        let mut payload = Payload { after: Image::Read(self.after_members), ..Payload::default() };
        let (mut us, mut ms) = (None, None);
        let mut rest = text;
        for (before, target) in slots {
            rest = rest.strip_prefix(before)?;
            let (value, after) = rest.split_at(form.value_len(rest)?);
            rest = after;
            match target {
                Target::Ignored => {
                    if let Some(ignored) = ignored.as_mut() {
                        ignored.push(value);
                    }
                }
                Target::After(i) => values[i] = form.to_value(value)?,
                Target::Op => payload.op = form.op_value(value)?,
                Target::Before => payload.before = form.before_value(value)?,
                Target::SourceTsUs => us = form.to_value(value)?.as_i64(),
                Target::SourceTsMs => ms = form.to_value(value)?.as_i64(),
            }
        }
        let rest = rest.strip_prefix(tail)?;
        if !rest.bytes().all(|byte| form.is_space(byte)) {
            return None;
        }
        payload.source_ts_micros = source_micros(us, ms);
        Some(payload)
    }

    /// Takes in the ignored values of a payload just read by the slots in `form` (empty when
    /// the shape is not looking).
    fn look_for_repeats(&mut self, form: Form, ignored: Vec<&str>) {
        let candidates = |ignored: Vec<&str>| Repeats::Candidates(form, ignored.into_iter().map(Box::from).collect());
        self.repeats = match std::mem::replace(&mut self.repeats, Repeats::Waiting(0)) {
            Repeats::Waiting(0) => candidates(ignored),
            Repeats::Waiting(n) => Repeats::Waiting(n - 1),
            Repeats::Candidates(last_form, last) if last_form == form => match self.merged(form, &last, &ignored) {
                Some(merged) => Repeats::Merged(merged),
                None => Repeats::Waiting(LOOK_AGAIN_AFTER),
            },
            Repeats::Candidates(..) => candidates(ignored),
            merged => merged,
        };
    }

    /// The slots in `form` with each ignored value that is the same in `last` and `now` written
    /// into the text; `None` when none is.
    fn merged(&self, form: Form, last: &[Box<str>], now: &[&str]) -> Option<Merged> {
        let mut repeated = last.iter().zip(now).map(|(last, now)| (**last == **now).then_some(*now));
        let (mut slots, mut text, mut any) = (vec![], String::new(), false);
        for slot in &self.slots {
            text.push_str(slot.text.of(form));
            if slot.target == Target::Ignored {
                if let Some(value) = repeated.next()? {
                    text.push_str(value);
                    any = true;
                    continue;
                }
            }
            slots.push((std::mem::take(&mut text).into_boxed_str(), slot.target));
        }
        text.push_str(self.tail.of(form));
        any.then(|| Merged { form, slots, tail: text.into_boxed_str() })
    }

    fn learn(text: &str, fields: &Columns) -> Option<Shape> {
        let mut learner = Learner { text, at: 0, mark: 0, slots: vec![] };
        let mut after = Members { members: 0, matched: 0 };
        // The members floe reads, each once: with two, serde_json's reading keeps the last.
        let mut read = HashSet::new();
        learner.whitespace();
        learner.members(|learner, name| {
            if ["before", "after", "op", "source"].contains(&&*name) && !read.insert(name.to_string()) {
                return None;
            }
            match &*name {
                "before" => learner.slot(Target::Before),
                "after" => {
                    // Matched as `ObjectSeed` matches them, so that a name two fields share
                    // goes where serde_json's reading puts it.
                    let mut next = 0;
                    learner.members(|learner, name| {
                        let field = field_of(fields, next, &name);
                        after.members += 1;
                        after.matched += usize::from(field.is_some());
                        next = field.map_or(next, |i| i + 1);
                        learner.slot(field.map_or(Target::Ignored, Target::After))
                    })
                }
                "op" => learner.slot(Target::Op),
                "source" => learner.members(|learner, name| {
                    learner.slot(match &*name {
                        "ts_us" => Target::SourceTsUs,
                        "ts_ms" => Target::SourceTsMs,
                        _ => Target::Ignored,
                    })
                }),
                _ => learner.slot(Target::Ignored),
            }
        })?;
        if !read.contains("after") || !space_trimmed(learner.rest()).is_empty() {
            return None;
        }
        let tail = Text::new(&learner.text[learner.mark..learner.at]);
        Some(Shape { fields: fields.clone(), slots: learner.slots, tail, after_members: after, repeats: Repeats::Waiting(0) })
    }
}

/// Walks a payload that serde_json has read, cutting it into the text between values.
struct Learner<'t> {
    text: &'t str,
    at: usize,
    /// Where the text before the next value starts.
    mark: usize,
    slots: Vec<Slot>,
}

impl Learner<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn whitespace(&mut self) {
        self.at = self.text.len() - space_trimmed(self.rest()).len();
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.rest().as_bytes().first() == Some(&byte)).then(|| self.at += 1)
    }

    /// An object's members: `each` is given a member's name with the walk at its value.
    fn members(&mut self, mut each: impl FnMut(&mut Self, Cow<str>) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.whitespace();
        if self.rest().starts_with('}') {
            self.at += 1;
            return Some(());
        }
        loop {
            self.whitespace();
            let len = string_len(self.rest())?;
            let quoted = &self.text[self.at..self.at + len];
            self.at += len;
            let name = match quoted.contains('\\') {
                false => Cow::Borrowed(&quoted[1..len - 1]),
                true => Cow::Owned(serde_json::from_str::<String>(quoted).ok()?),
            };
            self.expect(b':')?;
            self.whitespace();
            each(self, name)?;
            self.whitespace();
            match self.rest().as_bytes().first()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value at the walk is a slot: the text since the last one comes before it.
    fn slot(&mut self, target: Target) -> Option<()> {
        let len = value_len(self.rest())?;
        self.slots.push(Slot { text: Text::new(&self.text[self.mark..self.at]), target });
        self.at += len;
        self.mark = self.at;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::plain::MAX_VALUE_DEPTH;
    use super::*;
    use crate::decode::json_object::tests::fields;
    use crate::decode::payload::read_payload;
    use crate::escapes::escaped;

    /// A payload in the shape Debezium's PostgreSQL connector writes.
    fn update(id: i64, name: &str, op: &str) -> String {
        payload(id, name, id as f64 / 4.0, op)
    }

    fn payload(id: i64, name: &str, score: f64, op: &str) -> String {
        let source = format!(
            r#"{{"version":"3.6.3.Final","connector":"postgresql","name":"pg","ts_ms":{},"snapshot":"false","db":"postgres","sequence":"[null,\"{id}\"]","ts_us":{},"txId":751,"lsn":{id},"xmin":null}}"#,
            // Any `id` the property tries: the times only need to be numbers.
            1_700_000_000_000_i64.wrapping_add(id),
            1_700_000_000_000_000_i64.wrapping_add(id)
        );
        let after = format!(r#"{{"id":{id},"name":{},"score":{}}}"#, Value::from(name), Value::from(score));
        format!(r#"{{"before":null,"after":{after},"source":{source},"transaction":null,"op":"{op}","ts_ms":1}}"#)
    }

    /// The fields `id`, `name` and `score`, and the shape of an update of them, learned.
    fn knowing_an_update() -> (Columns, Shapes) {
        let fields = columns(&["id", "name", "score"]);
        let mut shapes = Shapes::default();
        shapes.learn(&update(1, "a", "c"), &fields);
        (fields, shapes)
    }

    /// As [`knowing_an_update`], having read two more updates in `form`, which agree on most of
    /// their `source` block: the shape compares those values as text.
    fn knowing_an_update_and_its_repeats(form: Form) -> (Columns, Shapes) {
        let (fields, mut shapes) = knowing_an_update();
        let in_form = |text: String| if form == Form::Escaped { escaped(&text) } else { text };
        for id in [2, 3] {
            assert!(read_as(&mut shapes, &in_form(update(id, "b", "u")), form, &fields).is_some());
        }
        assert!(matches!(&shapes.known[0].repeats, Repeats::Merged(merged) if merged.form == form), "{:?}", shapes.known[0].repeats);
        (fields, shapes)
    }

    fn columns(names: &[&str]) -> Columns {
        Arc::new(fields(names))
    }

    /// What serde_json reads, to hold a shape's reading to.
    fn in_full(text: &str, fields: &Columns) -> (String, Vec<Value>) {
        let mut values = vec![];
        let payload = read_payload(text.as_bytes(), Some(&fields[..]), &mut values).unwrap();
        (format!("{payload:?}"), values)
    }

    /// What a shape reads of `text`, written as JSON. The same text escaped inside a string is
    /// read alike, but for a `before` image and whitespace other than spaces (escaped, `\n`),
    /// which are left to be unescaped.
    fn by_shape(shapes: &mut Shapes, text: &str, fields: &Columns) -> Option<(String, Vec<Value>)> {
        let read = read_as(shapes, text, Form::Plain, fields);
        let escaped_alike = read.clone().filter(|(payload, _)| !payload.contains("before: Some") && !text.contains(['\n', '\t', '\r']));
        assert_eq!(read_as(shapes, &escaped(text), Form::Escaped, fields), escaped_alike, "escaped: {text}");
        read
    }

    fn read_as(shapes: &mut Shapes, text: &str, form: Form, fields: &Columns) -> Option<(String, Vec<Value>)> {
        let mut values = vec![];
        let payload = shapes.read(text, form, fields, &mut values)?;
        Some((format!("{payload:?}"), values))
    }

    #[test]
    fn a_payload_of_a_learned_shape_is_read_as_serde_json_reads_it() {
        let (fields, mut shapes) = knowing_an_update();
        for text in [update(2, "b", "u"), update(-7, "Zoë \"quoted\" \\ €", "r"), update(123_456_789_012, "", "u")] {
            assert_eq!(by_shape(&mut shapes, &text, &fields), Some(in_full(&text, &fields)), "{text}");
        }
    }

    #[test]
    fn a_payload_escaped_in_a_string_is_read_by_the_shape_its_json_taught() {
        let (fields, mut shapes) = knowing_an_update();
        for text in [update(2, "b", "u"), update(-7, "Zoë \"quoted\" \\ € \n", "r")] {
            assert_eq!(read_as(&mut shapes, &escaped(&text), Form::Escaped, &fields), Some(in_full(&text, &fields)), "{text}");
        }
        let text = escaped(&update(3, "c", "u"));
        for (otherwise, why) in [
            (text.replace("\\\"c\\\"", "\\\"\\u0063\\\""), "a string escaped otherwise"),
            (text.replace("\\\"c\\\"", "\\\"c\\x\\\""), "an escape that is not one"),
            (text.replace("\\\"c\\\"", "\\\"c\n\\\""), "a raw control character"),
            (text.replace("\\\"c\\\"", "\\\"c\"\\\""), "a raw quote"),
            (text.clone() + "\n", "raw whitespace after it"),
            (text.replace(r#"\"before\":null"#, r#"\"before\":{\"id\":3}"#), "a before image"),
        ] {
            assert_eq!(read_as(&mut shapes, &otherwise, Form::Escaped, &fields), None, "{why}: {otherwise}");
        }
        assert!(read_as(&mut shapes, &(text.clone() + "  "), Form::Escaped, &fields).is_some(), "spaces after it");
    }

    #[test]
    fn values_of_any_kind_in_a_slot_are_what_serde_json_makes_of_them() {
        let fields = columns(&["id", "v"]);
        let mut shapes = Shapes::default();
        shapes.learn(r#"{"after":{"id":1,"v":2},"op":"c","source":{"ts_us":3}}"#, &fields);
        let values = [
            "-0",
            "0",
            "-1",
            "1.5",
            "1e3",
            "-2.5E-3",
            "123456789012345678",
            "1234567890123456789",
            "18446744073709551615",
            "18446744073709551616",
            r#""\u00e9\n""#,
            "true",
            "false",
            "null",
            r#"{"a":[1,{"b":null}]}"#,
            "[]",
            r#""""#,
        ];
        for value in values {
            let text = format!(r#"{{"after":{{"id":1,"v":{value}}},"op":"c","source":{{"ts_us":{value}}}}}"#);
            assert_eq!(by_shape(&mut shapes, &text, &fields), Some(in_full(&text, &fields)), "{value}");
        }
    }

    #[test]
    fn any_difference_between_the_values_leaves_the_payload_to_serde_json() {
        let (fields, mut shapes) = knowing_an_update();
        let text = update(2, "b", "u");
        let differences = [
            text.replace(r#""op""#, r#" "op""#),
            text.replace(r#""score""#, r#""extra":1,"score""#),
            text.replace(r#""before":null"#, r#""before":{"id":2}"#)
                .replace(r#""after":{"id":2,"name":"b","score":0.5}"#, "\"after\":null"),
            text.replace("\"lsn\":2", "\"lsn\":02"),
            text.replace("\"lsn\":2", "\"lsn\":2.").replace("\"txId\":751", "\"txId\":7e"),
            text.replace(r#""name":"b""#, "\"name\":\"b\u{1}\""),
            text.replace(r#""name":"b""#, r#""name":"\x""#),
            text.replace(r#""op":"u""#, r#""op":5"#),
            text.clone() + " x",
            text[..text.len() - 1].to_string(),
        ];
        for text in differences {
            assert_eq!(by_shape(&mut shapes, &text, &fields), None, "{text}");
        }
        assert!(by_shape(&mut shapes, &(text.clone() + " \n"), &fields).is_some(), "whitespace after the payload");
        assert_eq!(by_shape(&mut shapes, &text, &columns(&["id", "name"])), None, "other fields");
    }

    #[test]
    fn shapes_are_kept_per_fields_and_the_least_recently_used_is_forgotten() {
        let (a, b) = (columns(&["id", "name", "score"]), columns(&["id", "name", "score"]));
        let mut shapes = Shapes::default();
        shapes.learn(&update(1, "a", "c"), &a);
        assert!(by_shape(&mut shapes, &update(2, "b", "u"), &b).is_some(), "equal fields in another list");
        let other = |i: usize| format!(r#"{{"after":{{"id":{i}}},"op{i}":"c"}}"#);
        for i in 0..MAX_SHAPES - 1 {
            shapes.learn(&other(i), &a);
        }
        assert!(by_shape(&mut shapes, &update(3, "c", "u"), &a).is_some(), "the first learned, used again");
        shapes.learn(&other(MAX_SHAPES), &a);
        assert_eq!(shapes.known.len(), MAX_SHAPES);
        assert!(by_shape(&mut shapes, &update(4, "d", "u"), &a).is_some(), "used more recently than the others");
        assert!(by_shape(&mut shapes, &other(0), &a).is_none(), "the least recently used was forgotten");
        assert!(by_shape(&mut shapes, &other(1), &a).is_some());
    }

    #[test]
    fn a_name_that_two_fields_share_goes_where_serde_json_puts_it() {
        let fields = columns(&["id", "name", "id"]);
        let mut shapes = Shapes::default();
        shapes.learn(r#"{"after":{"name":"x","id":1},"op":"c"}"#, &fields);
        let text = r#"{"after":{"name":"y","id":2},"op":"c"}"#;
        assert_eq!(by_shape(&mut shapes, text, &fields), Some(in_full(text, &fields)));
    }

    #[test]
    fn a_value_nested_deeper_than_serde_json_reads_in_a_payload_is_left_to_it() {
        let fields = columns(&["id", "v"]);
        let nested = |depth: usize| format!(r#"{{"after":{{"id":1,"v":{}{}}},"op":"c"}}"#, "[".repeat(depth), "]".repeat(depth));
        let mut shapes = Shapes::default();
        shapes.learn(&nested(1), &fields);
        let deepest = nested(MAX_VALUE_DEPTH);
        assert_eq!(by_shape(&mut shapes, &deepest, &fields), Some(in_full(&deepest, &fields)));
        let deeper = nested(MAX_VALUE_DEPTH + 1);
        assert!(read_payload(deeper.as_bytes(), Some(&fields[..]), &mut vec![]).is_err());
        assert_eq!(by_shape(&mut shapes, &deeper, &fields), None);
    }

    /// `text` with `len` bytes from `at` (or from its end, if shorter) replaced by `insert`.
    fn replaced(text: &str, at: usize, len: usize, insert: &str) -> String {
        let at = at.min(text.len());
        format!("{}{insert}{}", &text[..at], &text[(at + len).min(text.len())..])
    }

    #[test]
    fn values_that_repeat_are_compared_as_text_and_a_change_in_one_is_still_read() {
        let (fields, mut shapes) = knowing_an_update_and_its_repeats(Form::Plain);
        let Repeats::Merged(merged) = &shapes.known[0].repeats else { unreachable!() };
        assert!(merged.slots.len() < shapes.known[0].slots.len(), "fewer values to scan");
        assert!(merged.slots.iter().any(|(text, _)| text.contains(r#""connector":"postgresql","#)), "the connector repeats: it is text");
        assert!(merged.slots.iter().any(|(text, _)| text.ends_with(r#""lsn":"#)), "the lsn changes: it is scanned");
        let text = update(4, "d", "u");
        assert_eq!(read_as(&mut shapes, &text, Form::Plain, &fields), Some(in_full(&text, &fields)));

        let changed = text.replace("\"postgresql\"", "\"postgres\"");
        assert_eq!(read_as(&mut shapes, &changed, Form::Plain, &fields), Some(in_full(&changed, &fields)), "a repeated value changed");
        assert!(matches!(shapes.known[0].repeats, Repeats::Waiting(LOOK_AGAIN_AFTER)), "it waits before looking again");
        for id in 0..LOOK_AGAIN_AFTER + 2 {
            let text = update(i64::from(id) + 5, "e", "u").replace("\"postgresql\"", "\"postgres\"");
            assert_eq!(read_as(&mut shapes, &text, Form::Plain, &fields), Some(in_full(&text, &fields)));
        }
        assert!(matches!(shapes.known[0].repeats, Repeats::Merged(_)), "the new repeated values are merged");
    }

    #[test]
    fn a_payload_of_another_shape_leaves_the_repeated_values_merged() {
        let (fields, mut shapes) = knowing_an_update_and_its_repeats(Form::Plain);
        let other = r#"{"after":{"id":1},"op":"c"}"#;
        shapes.learn(other, &fields);
        for text in [update(4, "d", "u"), other.to_string(), update(5, "e", "u")] {
            assert_eq!(read_as(&mut shapes, &text, Form::Plain, &fields), Some(in_full(&text, &fields)), "{text}");
        }
        let update_shape = shapes.known.iter().find(|shape| shape.slots.len() > 3).unwrap();
        assert!(matches!(update_shape.repeats, Repeats::Merged(_)));
    }

    proptest::proptest! {
        #[test]
        fn any_string_or_number_in_a_slot_is_read_as_serde_json_reads_it(name in "\\PC*", score in proptest::num::f64::NORMAL, id: i64) {
            let (fields, mut shapes) = knowing_an_update();
            let text = payload(id, &name, score, "u");
            proptest::prop_assert_eq!(by_shape(&mut shapes, &text, &fields), Some(in_full(&text, &fields)));
        }

        #[test]
        fn a_payload_with_any_stretch_replaced_is_read_as_serde_json_reads_it_or_left_to_it(
            at in 0usize..310,
            len in 0usize..6,
            insert in "[a-z0-9 .eE+\\-\"\\\\{}\\[\\],:\u{1}é]{0,5}",
            repeats: bool,
        ) {
            let (fields, mut shapes) = if repeats { knowing_an_update_and_its_repeats(Form::Plain) } else { knowing_an_update() };
            let changed = replaced(&update(2, "b", "u"), at, len, &insert);
            let mut values = vec![];
            let in_full = read_payload(changed.as_bytes(), Some(&fields[..]), &mut values).map(|payload| (format!("{payload:?}"), values));
            if let Some(read) = by_shape(&mut shapes, &changed, &fields) {
                proptest::prop_assert_eq!(Some(read), in_full.ok(), "{}", changed);
            }
        }

        #[test]
        fn an_escaped_payload_with_any_stretch_replaced_is_read_as_its_text_or_left_alone(
            at in 0usize..420,
            len in 0usize..6,
            insert in "[a-z0-9 .eE+\\-\"\\\\{}\\[\\],:/\u{1}\né]{0,6}",
            repeats: bool,
        ) {
            let (fields, mut shapes) = if repeats { knowing_an_update_and_its_repeats(Form::Escaped) } else { knowing_an_update() };
            let changed = replaced(&escaped(&update(2, "b \"q\"", "u")), at, len, &insert);
            if let Some(read) = read_as(&mut shapes, &changed, Form::Escaped, &fields) {
                let mut unescaped = bytes::BytesMut::new();
                let valid = crate::escapes::unescape_all(b"", changed.as_bytes(), &mut unescaped);
                proptest::prop_assert!(valid.is_ok(), "read escaped, so its escapes are valid: {}", changed);
                let unescaped = String::from_utf8(unescaped.to_vec()).unwrap();
                proptest::prop_assert_eq!(Some(read), Some(in_full(&unescaped, &fields)), "{}", changed);
            }
        }
    }

    #[test]
    fn payloads_that_serde_json_reads_otherwise_are_not_learned() {
        let fields = columns(&["id"]);
        for text in [
            r#"{"after":null,"op":"d"}"#,
            r#"{"after":{"id":1},"after":{"id":2},"op":"u"}"#,
            r#"{"after":{"id":1},"source":"pg","op":"u"}"#,
            r#"{"before":null,"op":"u"}"#,
        ] {
            let mut shapes = Shapes::default();
            shapes.learn(text, &fields);
            assert!(shapes.known.is_empty(), "{text}");
        }
    }
}
