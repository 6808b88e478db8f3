package config

// Decoding: ferry.yaml is parsed with go-yaml and decoded here, so that every value is checked
// for its type and every error carries the value's line and column, and so that a hostile file
// (an alias bomb, deep nesting, control bytes) is refused early and cheaply.

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// checkText refuses, at their line and column, what YAML does not allow in a file or what no
// config needs: more than maxFileSize bytes, bytes that are not UTF-8, control characters.
func checkText(file string, data []byte) error {
	if len(data) > maxFileSize {
		line, col := lineColumn(data, maxFileSize)
		return &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf("the file is larger than %d MiB; a ferry.yaml is a few KiB", maxFileSize>>20)}
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var msg string
		switch {
		case r == utf8.RuneError && size == 1:
			msg = fmt.Sprintf("byte 0x%02x is not UTF-8: save the file as UTF-8", data[i])
		case !printable(r):
			msg = fmt.Sprintf("the control character %U is not allowed in a YAML file", r)
		}
		if msg != "" {
			line, col := lineColumn(data, i)
			return &Error{File: file, Line: line, Column: col, Msg: msg}
		}
		i += size
	}
	return nil
}

// printable is YAML's set of characters a file may hold (YAML 1.2, 5.1).
func printable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
		(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || (r >= 0x10000 && r <= utf8.MaxRune)
}

// lineColumn is the line and column, in characters, of the byte at offset.
func lineColumn(data []byte, offset int) (line, col int) {
	line, col = 1, 1
	for _, r := range string(data[:offset]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// checkTokens refuses, before the parser sees them, values longer than maxValueSize and nesting
// deeper than the parser handles in bounded time.
func checkTokens(file string, tokens token.Tokens) error {
	depth := 0
	at := func(tk *token.Token, format string, args ...any) error {
		e := &Error{File: file, Line: 1, Column: 1, Msg: fmt.Sprintf(format, args...)}
		if tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
		return e
	}
	for _, tk := range tokens {
		if size := len(tk.Value); size > maxValueSize {
			// The text of a block scalar (|, >) is placed at its end; name where it starts.
			if p := tk.Prev; p != nil && (p.Type == token.LiteralType || p.Type == token.FoldedType) {
				tk = p
			}
			return at(tk, "a value of %d KiB; ferry.yaml takes values up to %d KiB (put a long script in a file and run that)", size>>10, maxValueSize>>10)
		}
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			if depth++; depth > maxFlowDepth {
				return at(tk, "brackets nested more than %d deep; ferry.yaml needs a few levels", maxFlowDepth)
			}
		case token.SequenceEndType, token.MappingEndType:
			depth = max(depth-1, 0)
		}
		// Outside brackets each level of nesting starts further right: a "-", a "?" or a key
		// this far right is nesting no config has.
		block := tk.Type == token.SequenceEntryType || tk.Type == token.MappingKeyType ||
			(tk.Next != nil && tk.Next.Type == token.MappingValueType)
		if depth == 0 && block && tk.Position != nil && tk.Position.Column > maxColumn {
			return at(tk, "nested or indented too deeply (column %d); ferry.yaml needs a few levels", tk.Position.Column)
		}
	}
	return nil
}

// document returns the one YAML document of the file, refusing an empty file and a second one.
func document(file string, f *ast.File) (ast.Node, error) {
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || empty(doc.Body) {
			continue
		}
		if body != nil {
			e := &Error{File: file, Line: 1, Column: 1, Msg: "a second YAML document starts here; ferry.yaml is one document (remove the --- line and what follows, or merge the two)"}
			p := nodePos(doc.Body)
			if doc.Start != nil {
				p = doc.Start.Position
			}
			if p != nil {
				e.Line, e.Column = p.Line, p.Column
			}
			return nil, e
		}
		body = doc.Body
	}
	if body == nil {
		return nil, &Error{File: file, Line: 1, Column: 1, Msg: "the file is empty; it needs at least root and source (run 'ferry init' to write a commented one)"}
	}
	return body, nil
}

// empty reports whether a document holds no value: nothing, comments, or only the directives
// (%YAML 1.2, %TAG) that go-yaml makes a document of their own, ended by the --- that follows.
func empty(n ast.Node) bool {
	switch n.(type) {
	case nil, *ast.NullNode, *ast.CommentGroupNode, *ast.CommentNode, *ast.DirectiveNode:
		return true
	}
	return false
}

// decoder fills a Config from the parsed file. It is strict where go-yaml's decoder is lenient:
// a value of the wrong type (a number or a boolean where text goes, a float for a count) is an
// error, and every error names the value's line and column and its key.
type decoder struct {
	file string
	// targets is the value each alias stands for (see bind).
	targets map[*ast.AliasNode]ast.Node
	// pos is where each decoded value was written, by its YAML path ($.hosts[0].ssh), so that
	// validation can report a bad value at its position.
	pos map[string]*token.Position
	// values and text are how many more values, and bytes of text, the file may stand for with
	// its aliases expanded: an alias to a long value stands for all of its text again.
	values, text int
	// merging holds the mappings being decoded, so that one merged into itself is refused.
	merging map[ast.Node]bool
	// expanding is the outermost alias or merge being decoded: where a bomb goes off.
	expanding ast.Node
	// vars are what {{name}} stands for in strings; environment is the chosen environment;
	// getenv looks up {{env.NAME}}.
	vars        map[string]string
	environment string
	getenv      func(string) (string, bool)
	fromEnv     map[string]string   // see Config.FromEnv
	hostOnly    map[string]string   // variables some host defines, to the key that does
	usedBy      map[string][]string // variables, to the keys whose values use them (see use)
	// budgetValues and budgetText are what values and text started at.
	budgetValues, budgetText int
}

func newDecoder(file string, body ast.Node, tokens, size int) *decoder {
	d := &decoder{file: file, targets: bind(body), pos: map[string]*token.Position{},
		values: max(minValues, valuesPerToken*tokens), text: max(minText, textPerByte*size),
		merging: map[ast.Node]bool{}}
	d.budgetValues, d.budgetText = d.values, d.text
	return d
}

func (d *decoder) errorf(n ast.Node, format string, args ...any) error {
	e := &Error{File: d.file, Line: 1, Column: 1, Msg: fmt.Sprintf(format, args...)}
	if p := nodePos(n); p != nil {
		e.Line, e.Column = p.Line, p.Column
	}
	return e
}

// nodePos is where a node starts: for a mapping, its first key.
func nodePos(n ast.Node) *token.Position {
	switch m := n.(type) {
	case nil:
		return nil
	case *ast.MappingNode:
		if len(m.Values) > 0 && !m.IsFlowStyle {
			return nodePos(m.Values[0])
		}
	case *ast.MappingValueNode:
		return nodePos(m.Key)
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Position
	}
	return nil
}

// keyOf is the key a user wrote for the YAML path p: hooks.before_activate[0].run.
func keyOf(p string) string {
	if k := strings.TrimPrefix(strings.TrimPrefix(p, "$"), "."); k != "" {
		return k
	}
	return "the file"
}

// positioned reports msg at the value at YAML path p, or at the nearest enclosing value that the
// file has (the key may be missing).
func (d *decoder) positioned(p, msg string) error {
	e := &Error{File: d.file, Line: 1, Column: 1, Msg: msg}
	for q := p; q != "$" && q != ""; {
		if pos := d.pos[q]; pos != nil {
			e.Line, e.Column = pos.Line, pos.Column
			break
		}
		i := strings.LastIndexAny(q, ".[")
		if i <= 0 {
			break
		}
		q = q[:i]
	}
	return e
}

// bind finds, in document order, the value each alias of body stands for: that of the last
// anchor of its name before it. Decoding may then take a mapping's merge keys before its other
// keys and still follow every alias as the file reads.
func bind(body ast.Node) map[*ast.AliasNode]ast.Node {
	anchors := map[string]ast.Node{}
	targets := map[*ast.AliasNode]ast.Node{}
	ast.Walk(visitor(func(n ast.Node) {
		switch a := n.(type) {
		case *ast.AnchorNode:
			anchors[a.Name.GetToken().Value] = a.Value
		case *ast.AliasNode:
			if target, ok := anchors[a.Value.GetToken().Value]; ok {
				targets[a] = target
			}
		}
	}), body)
	return targets
}

type visitor func(ast.Node)

func (v visitor) Visit(n ast.Node) ast.Visitor {
	v(n)
	return v
}

// resolve follows anchors and aliases to the node that holds a value.
func (d *decoder) resolve(n ast.Node) (ast.Node, error) {
	for range maxAliasHops {
		switch a := n.(type) {
		case *ast.AnchorNode:
			n = a.Value
		case *ast.AliasNode:
			target, ok := d.targets[a]
			if !ok {
				name := a.Value.GetToken().Value
				return nil, d.errorf(a, "alias *%s: no anchor &%s comes before it", name, name)
			}
			n = target
		default:
			return n, nil
		}
	}
	return nil, d.errorf(n, "anchors and aliases refer to each other more than %d times over", maxAliasHops)
}

// spend takes one value and its bytes of text from what the file may stand for.
func (d *decoder) spend(n ast.Node, text int) error {
	d.values--
	d.text -= text
	if d.values >= 0 && d.text >= 0 {
		return nil
	}
	if d.expanding != nil {
		n = d.expanding
	}
	if d.values < 0 {
		return d.errorf(n, "aliases make the file stand for far more values than it holds (a YAML bomb?); ferry.yaml needs no such nesting")
	}
	return d.errorf(n, "aliases make the file stand for far more text than it holds (a YAML bomb?); ferry.yaml needs no such repetition")
}

// textSize is how many bytes of text a value holds: none for a mapping or a list, whose
// values are counted each on its own.
func textSize(n ast.Node) int {
	switch t := n.(type) {
	case nil, *ast.MappingNode, *ast.SequenceNode:
		return 0
	case *ast.StringNode:
		return len(t.Value)
	case *ast.LiteralNode:
		if t.Value != nil {
			return len(t.Value.Value)
		}
	}
	if tk := n.GetToken(); tk != nil {
		return len(tk.Value)
	}
	return 0
}

// expand notes that n, an alias or a merge, is being decoded, unless one that holds it is; the
// returned function ends that.
func (d *decoder) expand(n ast.Node) func() {
	if d.expanding != nil {
		return func() {}
	}
	d.expanding = n
	return func() { d.expanding = nil }
}

var (
	hostType     = reflect.TypeFor[Host]()
	sharedType   = reflect.TypeFor[SharedEntry]()
	countType    = reflect.TypeFor[Count]()
	durationType = reflect.TypeFor[Duration]()
)

// decode stores the value of node n, at YAML path p, in v.
func (d *decoder) decode(n ast.Node, v reflect.Value, p string) error {
	d.pos[p] = nodePos(n) // where it is used: an alias rather than its anchor
	// A value of the wrong type is reported where it is used, too.
	var at ast.Node
	if _, ok := n.(*ast.AliasNode); ok {
		defer d.expand(n)()
		at = n
	}
	n, err := d.resolve(n)
	if err != nil {
		return err
	}
	if at == nil {
		at = n
	}
	if t, ok := n.(*ast.TagNode); ok {
		if n, err = d.untag(t, at, p); err != nil {
			return err
		}
	}
	if err := d.spend(at, textSize(n)); err != nil {
		return err
	}
	if _, ok := n.(*ast.NullNode); ok || n == nil {
		v.SetZero() // "key:" or "key: ~" is the same as no key
		return nil
	}
	return d.value(n, at, v, p)
}

// untag returns the value of t, a tagged node used at at, if the tag is one of YAML's core tags
// and fits the value: !!map {…}, !!seq […], !!int 5, !!bool true, and !!str before any value
// written as text (!!str 2024 is the text 2024).
func (d *decoder) untag(t *ast.TagNode, at ast.Node, p string) (ast.Node, error) {
	tag := t.Start.Value
	n, err := d.resolve(t.Value)
	if err != nil {
		return nil, err
	}
	fits := false
	switch tag {
	case "!!str":
		switch s := n.(type) {
		case *ast.StringNode, *ast.LiteralNode, *ast.NullNode:
			return n, nil
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
			return ast.String(s.GetToken()), nil
		}
	case "!!int":
		_, fits = n.(*ast.IntegerNode)
	case "!!bool":
		_, fits = n.(*ast.BoolNode)
	case "!!map":
		_, fits = n.(*ast.MappingNode)
	case "!!seq":
		_, fits = n.(*ast.SequenceNode)
	default:
		return nil, d.errorf(at, "%s: the YAML tag %s is not supported; remove it", keyOf(p), tag)
	}
	if !fits {
		return nil, d.errorf(at, "%s: the YAML tag %s does not fit %s; remove it", keyOf(p), tag, describe(n))
	}
	return n, nil
}

// numberRange says which numbers a whole-number key takes, for one far out of that range.
var numberRange = map[string]string{
	"$.keep_releases":        "keep 1 or more releases, such as 5",
	"$.health.expect_status": "use an HTTP status from 100 to 599, such as 200",
}

// value stores n, neither an anchor nor an alias nor a tag nor null, in v. An error in n itself
// is reported at at, where n is used.
func (d *decoder) value(n, at ast.Node, v reflect.Value, p string) error {
	key := keyOf(p)
	switch v.Type() {
	case hostType:
		if s, ok := n.(*ast.StringNode); ok {
			if s.Value != "local" {
				return d.errorf(at, "host %s: write \"local\" or a mapping such as {ssh: deploy@web1}", quote(s.Value))
			}
			v.Set(reflect.ValueOf(Host{Local: true}))
			return nil
		}
		m, ok := n.(*ast.MappingNode)
		if !ok {
			return d.errorf(at, "%s: expected \"local\" or a mapping such as {ssh: deploy@web1}, got %s", key, describe(n))
		}
		return d.decodeStruct(m, v, p)
	case sharedType:
		if m, ok := n.(*ast.MappingNode); ok {
			return d.decodeStruct(m, v, p)
		}
		return d.value(n, at, v.FieldByName("Path"), p)
	case countType:
		return d.wholeNumber(n, at, v, p)
	case durationType:
		s, ok := n.(*ast.StringNode)
		if !ok {
			return d.errorf(at, "%s: expected a duration such as 30s, got %s", key, describe(n))
		}
		t, err := time.ParseDuration(s.Value)
		if err != nil {
			return d.errorf(at, "%s: %s is not a duration: write it as 30s, 2m or 1h", key, quote(s.Value))
		}
		v.SetInt(int64(t))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		if err := d.value(n, at, e.Elem(), p); err != nil {
			return err
		}
		v.Set(e)
	case reflect.String:
		var s string
		switch t := n.(type) {
		case *ast.StringNode:
			s = t.Value
		case *ast.LiteralNode:
			s = t.Value.Value
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
			return d.errorf(at, "%s: expected a string, got %s; put it in quotes if it is meant as text", key, describe(n))
		default:
			return d.errorf(at, "%s: expected a string, got %s", key, describe(n))
		}
		s, err := d.substitute(s, at, key)
		if err != nil {
			return err
		}
		if r, bad := controlChar(s, "\t\n"); bad {
			return d.errorf(at, "%s: the control character %U is not allowed in a value", key, r)
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			return d.errorf(at, "%s: expected true or false, got %s", key, describe(n))
		}
		v.SetBool(b.Value)
	case reflect.Int:
		return d.wholeNumber(n, at, v, p)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			return d.errorf(at, "%s: expected a list such as [a, b], got %s", key, describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			if err := d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", p, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if ok {
			return d.decodeStruct(m, v, p)
		}
		if p == "$" {
			what := "a single value"
			if _, ok := n.(*ast.SequenceNode); ok {
				what = "a list"
			}
			return d.errorf(at, "ferry.yaml must be a mapping of keys such as root: and source:, not %s", what)
		}
		return d.errorf(at, "%s: expected a mapping (key: value), got %s", key, describe(n))
	default:
		return d.errorf(at, "%s: cannot hold a value", key)
	}
	return nil
}

// wholeNumber stores in v a count or an HTTP status written in decimal digits, with an optional
// sign: never 1.9, "3", 0x10 or 1_000. The number's own text is read, so that 010 is ten
// as it reads, not eight.
func (d *decoder) wholeNumber(n, at ast.Node, v reflect.Value, p string) error {
	key := keyOf(p)
	var text string
	switch t := n.(type) {
	case *ast.IntegerNode:
		text = t.GetToken().Value
	case *ast.StringNode:
		// go-yaml reads a plain integer too long for 64 bits as text.
		if tk := t.GetToken(); tk != nil && tk.Type == token.StringType {
			text = t.Value
		}
	}
	x, err := strconv.ParseInt(text, 10, 32)
	switch {
	case errors.Is(err, strconv.ErrRange):
		msg := fmt.Sprintf("%s %s is out of range", key, describe(n))
		if r := numberRange[p]; r != "" {
			msg += ": " + r
		}
		return d.errorf(at, "%s", msg)
	case err != nil && isInteger(n):
		return d.errorf(at, "%s must be a whole number in decimal digits, such as 5, not %s", key, describe(n))
	case err != nil:
		return d.errorf(at, "%s must be a whole number, not %s", key, describe(n))
	}
	v.SetInt(x)
	return nil
}

func isInteger(n ast.Node) bool {
	_, ok := n.(*ast.IntegerNode)
	return ok
}

// decodeStruct stores the mapping m in the struct v. Keys merged in with "<<: *anchor" come
// first, so that the mapping's own keys win over them.
func (d *decoder) decodeStruct(m *ast.MappingNode, v reflect.Value, p string) error {
	if err := d.spend(m, 0); err != nil {
		return err
	}
	if !d.merging[m] {
		d.merging[m] = true
		defer delete(d.merging, m)
	}
	fields := map[string]int{}
	var names []string
	for i := range v.NumField() {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = i
			names = append(names, tag)
		}
	}
	for _, kv := range m.Values {
		if !kv.Key.IsMergeKey() {
			continue
		}
		sources, err := d.mergeSources(kv.Value, p)
		if err != nil {
			return err
		}
		// Of a list of mappings, the earlier ones win: merge them last.
		done := d.expand(kv.Value)
		for _, src := range slices.Backward(sources) {
			if err := d.decodeStruct(src, v, p); err != nil {
				return err
			}
		}
		done()
	}
	for _, kv := range m.Values {
		if kv.Key.IsMergeKey() {
			continue
		}
		name := d.keyName(kv.Key)
		i, ok := fields[name]
		if !ok {
			hint := ""
			if near := nearest(name, names); near != "" {
				hint = fmt.Sprintf(", did you mean %q?", near)
			}
			where := ""
			if p != "$" {
				where = " in " + keyOf(p)
			}
			return d.errorf(kv.Key, "unknown field %s%s%s (see 'ferry init' for every key)", quote(name), where, hint)
		}
		f := v.Field(i)
		f.SetZero()
		if err := d.decode(kv.Value, f, p+"."+name); err != nil {
			return err
		}
	}
	return nil
}

// mergeSources returns the mappings that "<<: value" merges: one, or a list of them.
func (d *decoder) mergeSources(value ast.Node, p string) ([]*ast.MappingNode, error) {
	var items []ast.Node
	n, err := d.untagged(value, p)
	if err != nil {
		return nil, err
	}
	if seq, ok := n.(*ast.SequenceNode); ok {
		for _, item := range seq.Values {
			if item, err = d.untagged(item, p); err != nil {
				return nil, err
			}
			items = append(items, item)
		}
	} else {
		items = []ast.Node{n}
	}
	var sources []*ast.MappingNode
	for _, item := range items {
		src, ok := item.(*ast.MappingNode)
		if !ok {
			what := describe(item)
			if s, ok := item.(*ast.StringNode); ok {
				what = quote(s.Value)
			}
			return nil, d.errorf(value, "<<: merges a mapping or a list of mappings, not %s", what)
		}
		if d.merging[src] {
			return nil, d.errorf(value, "<<: merges a mapping into itself")
		}
		sources = append(sources, src)
	}
	return sources, nil
}

// untagged resolves n and, if it is tagged, its tag.
func (d *decoder) untagged(n ast.Node, p string) (ast.Node, error) {
	at := n
	n, err := d.resolve(n)
	if t, ok := n.(*ast.TagNode); ok && err == nil {
		return d.untag(t, at, p)
	}
	return n, err
}

// keyName is the text of a mapping's key: "app" for app, &k app, !!str app and *k.
func (d *decoder) keyName(k ast.Node) string {
	for range maxAliasHops {
		switch t := k.(type) {
		case nil:
			return ""
		case *ast.MappingKeyNode:
			k = t.Value
		case *ast.AnchorNode:
			k = t.Value
		case *ast.AliasNode:
			target, ok := d.targets[t]
			if !ok {
				return "*" + t.Value.GetToken().Value
			}
			k = target
		case *ast.TagNode:
			if t.Start.Value != "!!str" {
				return t.Start.Value
			}
			k = t.Value
		case *ast.StringNode:
			return t.Value
		default:
			if tk := k.GetToken(); tk != nil {
				return tk.Value
			}
			return ""
		}
	}
	return ""
}

// describe names a value in an error: its text if it is short, else what kind of value it is.
func describe(n ast.Node) string {
	switch t := n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.NullNode:
		return "nothing"
	case *ast.TagNode:
		if t.Value != nil {
			return t.Start.Value + " " + describe(t.Value)
		}
		return t.Start.Value
	case *ast.AnchorNode:
		return describe(t.Value)
	case *ast.AliasNode:
		return "*" + t.Value.GetToken().Value
	case *ast.StringNode:
		if tk := t.GetToken(); tk != nil && (tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType) {
			return quote(t.Value)
		}
		return truncate(t.Value)
	}
	if tk := n.GetToken(); tk != nil {
		return truncate(tk.Value)
	}
	return "a " + strings.ToLower(n.Type().String())
}

const maxShown = 60 // runes of a value shown in a message

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxShown && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return quote(s)
}

// quote quotes s for a message, escaping control characters and cutting it if long.
func quote(s string) string {
	if r := []rune(s); len(r) > maxShown {
		return strconv.Quote(string(r[:maxShown])) + "…"
	}
	return strconv.Quote(s)
}

// nearest is the name in names that s most likely misspells, or "".
func nearest(s string, names []string) string {
	best, dist := "", 3 // more than two edits is no longer a typo
	if len(s) > 64 {
		return ""
	}
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), n); d < dist {
			best, dist = n, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps of two neighbours
// that turn a into b.
func editDistance(a, b string) int {
	prev2, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// controlChar returns the first control character of s that is not in allowed.
func controlChar(s, allowed string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) && !strings.ContainsRune(allowed, r) {
			return r, true
		}
	}
	return 0, false
}

// decodeError turns a go-yaml parse error into an *Error with a position and a plain message.
// parser.Parse returns only yaml.Error values; anything else is shown as it is.
func decodeError(file string, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &Error{File: file, Msg: err.Error()}
	}
	e := &Error{File: file, Msg: ye.GetMessage()}
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
	}
	if strings.Contains(e.Msg, "'\t'") {
		e.Msg += " (indent with spaces: YAML does not allow tabs there)"
	}
	return e
}
