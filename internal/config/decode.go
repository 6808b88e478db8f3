package config

// Decoding: ferry.yaml is parsed with go-yaml and decoded here, so that every value is checked
// for its type and every error carries the value's line and column, and so that a hostile file
// (an alias bomb, deep nesting, control bytes) is refused early and cheaply.

import (
	"errors"
	"fmt"
	"math"
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
	line, col := 1, 1
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
			return &Error{File: file, Line: line, Column: col, Msg: msg}
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
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

func empty(n ast.Node) bool {
	switch n.(type) {
	case nil, *ast.NullNode, *ast.CommentGroupNode, *ast.CommentNode:
		return true
	}
	return false
}

// decoder fills a Config from the parsed file. It is strict where go-yaml's decoder is lenient:
// a value of the wrong type (a number or a boolean where text goes, a float for a count) is an
// error, and every error names the value's line and column and its key.
type decoder struct {
	file    string
	anchors map[string]ast.Node
	// pos is where each decoded value was written, by its YAML path ($.hosts[0].ssh), so that
	// validation can report a bad value at its position.
	pos map[string]*token.Position
	// budget is how many more values the file may stand for, aliases expanded.
	budget int
	// merging holds the mappings being decoded, so that one merged into itself is refused.
	merging map[ast.Node]bool
	// expanding is the outermost alias or merge being decoded: where a bomb goes off.
	expanding ast.Node
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

// resolve follows anchors (recording them) and aliases to the node that holds a value.
func (d *decoder) resolve(n ast.Node) (ast.Node, error) {
	for range maxAliasHops {
		switch a := n.(type) {
		case *ast.AnchorNode:
			d.anchors[a.Name.GetToken().Value] = a.Value
			n = a.Value
		case *ast.AliasNode:
			name := a.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				return nil, d.errorf(a, "alias *%s: no anchor &%s comes before it", name, name)
			}
			n = target
		default:
			return n, nil
		}
	}
	return nil, d.errorf(n, "anchors and aliases refer to each other more than %d times over", maxAliasHops)
}

func (d *decoder) spend(n ast.Node) error {
	if d.budget--; d.budget < 0 {
		if d.expanding != nil {
			n = d.expanding
		}
		return d.errorf(n, "aliases make the file stand for far more values than it holds (a YAML bomb?); ferry.yaml needs no such nesting")
	}
	return nil
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
	countType    = reflect.TypeFor[Count]()
	durationType = reflect.TypeFor[Duration]()
)

// decode stores the value of node n, at YAML path p, in v.
func (d *decoder) decode(n ast.Node, v reflect.Value, p string) error {
	if err := d.spend(n); err != nil {
		return err
	}
	d.pos[p] = nodePos(n) // where it is used: an alias rather than its anchor
	if _, ok := n.(*ast.AliasNode); ok {
		defer d.expand(n)()
	}
	n, err := d.resolve(n)
	if err != nil {
		return err
	}
	if _, ok := n.(*ast.NullNode); ok || n == nil {
		v.SetZero() // "key:" or "key: ~" is the same as no key
		return nil
	}
	return d.value(n, v, p)
}

// value stores n, neither an anchor nor an alias nor null, in v.
func (d *decoder) value(n ast.Node, v reflect.Value, p string) error {
	key := keyOf(p)
	switch v.Type() {
	case hostType:
		if s, ok := n.(*ast.StringNode); ok {
			if s.Value != "local" {
				return d.errorf(n, "host %s: write \"local\" or a mapping such as {ssh: deploy@web1}", quote(s.Value))
			}
			v.Set(reflect.ValueOf(Host{Local: true}))
			return nil
		}
		if _, ok := n.(*ast.MappingNode); !ok {
			return d.errorf(n, "%s: expected \"local\" or a mapping such as {ssh: deploy@web1}, got %s", key, describe(n))
		}
		return d.decodeStruct(n, v, p)
	case countType:
		x, err := wholeNumber(n)
		if err != nil {
			return d.errorf(n, "%s %v", key, err)
		}
		v.SetInt(x)
		return nil
	case durationType:
		s, ok := n.(*ast.StringNode)
		if !ok {
			return d.errorf(n, "%s: expected a duration such as 30s, got %s", key, describe(n))
		}
		t, err := time.ParseDuration(s.Value)
		if err != nil {
			return d.errorf(n, "%s: %s is not a duration: write it as 30s, 2m or 1h", key, quote(s.Value))
		}
		v.SetInt(int64(t))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		if err := d.value(n, e.Elem(), p); err != nil {
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
		case *ast.TagNode:
			// !!str 5 is YAML's way to write the text 5; every other tag is refused.
			inner, ok := t.Value.(ast.ScalarNode)
			if t.Start.Value != "!!str" || !ok || inner.GetToken() == nil {
				return d.errorf(n, "%s: the YAML tag %s is not supported; remove it", key, t.Start.Value)
			}
			s = inner.GetToken().Value
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
			return d.errorf(n, "%s: expected a string, got %s; put it in quotes if it is meant as text", key, describe(n))
		default:
			return d.errorf(n, "%s: expected a string, got %s", key, describe(n))
		}
		if r, bad := controlChar(s, "\t\n"); bad {
			return d.errorf(n, "%s: the control character %U is not allowed in a value", key, r)
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			return d.errorf(n, "%s: expected true or false, got %s", key, describe(n))
		}
		v.SetBool(b.Value)
	case reflect.Int:
		x, err := wholeNumber(n)
		if err != nil {
			return d.errorf(n, "%s %v", key, err)
		}
		v.SetInt(x)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			return d.errorf(n, "%s: expected a list such as [a, b], got %s", key, describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			if err := d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", p, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Struct:
		return d.decodeStruct(n, v, p)
	default:
		return d.errorf(n, "%s: cannot hold a value", key)
	}
	return nil
}

// wholeNumber reads an integer that fits in 32 bits: a count or an HTTP status, never 1.9 or
// "3". Its error completes a sentence that starts with the key.
func wholeNumber(n ast.Node) (int64, error) {
	var x int64
	big := false
	switch t := n.(type) {
	case *ast.IntegerNode:
		switch v := t.Value.(type) {
		case int64:
			x = v
		case uint64:
			x, big = int64(min(v, math.MaxInt64)), v > math.MaxInt32
		}
	case *ast.StringNode:
		// go-yaml reads a plain integer too long for 64 bits as text.
		if tk := t.GetToken(); tk != nil && tk.Type == token.StringType && strings.TrimLeft(strings.TrimPrefix(t.Value, "-"), "0123456789") == "" && len(t.Value) > 1 {
			big = true
			break
		}
		return 0, fmt.Errorf("must be a whole number, not %s", describe(n))
	default:
		return 0, fmt.Errorf("must be a whole number, not %s", describe(n))
	}
	if big || x > math.MaxInt32 || x < math.MinInt32 {
		return 0, fmt.Errorf("must be a whole number from %d to %d, not %s", math.MinInt32, math.MaxInt32, describe(n))
	}
	return x, nil
}

// decodeStruct stores the mapping n in the struct v. Keys merged in with "<<: *anchor" come
// first, so that the mapping's own keys win over them.
func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, p string) error {
	if err := d.spend(n); err != nil {
		return err
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if p == "$" {
			what := "a single value"
			if _, ok := n.(*ast.SequenceNode); ok {
				what = "a list"
			}
			return d.errorf(n, "ferry.yaml must be a mapping of keys such as root: and source:, not %s", what)
		}
		return d.errorf(n, "%s: expected a mapping (key: value), got %s", keyOf(p), describe(n))
	}
	if d.merging[m] {
		return d.errorf(n, "%s: this mapping is merged into itself", keyOf(p))
	}
	d.merging[m] = true
	defer delete(d.merging, m)
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
		src, err := d.resolve(kv.Value)
		if err != nil {
			return err
		}
		sources := []ast.Node{src}
		if seq, ok := src.(*ast.SequenceNode); ok {
			sources = nil
			for _, item := range seq.Values {
				if item, err = d.resolve(item); err != nil {
					return err
				}
				sources = append(sources, item)
			}
		}
		for _, src := range sources {
			if _, ok := src.(*ast.MappingNode); !ok {
				return d.errorf(kv.Value, "<<: merges a mapping or a list of mappings, not %s", describe(src))
			}
			if d.merging[src] {
				return d.errorf(kv.Value, "<<: merges a mapping into itself")
			}
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
		var name string
		k := ast.Node(kv.Key)
		if mk, ok := k.(*ast.MappingKeyNode); ok {
			k = mk.Value
		}
		if s, ok := k.(*ast.StringNode); ok {
			name = s.Value
		} else if tk := k.GetToken(); tk != nil {
			name = tk.Value
		}
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
func decodeError(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		e := &Error{File: file, Msg: ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
		if strings.Contains(e.Msg, "'\t'") {
			e.Msg += " (indent with spaces: YAML does not allow tabs there)"
		}
		return e
	}
	msg := err.Error()
	if line, col, rest, ok := leadingPosition(msg); ok {
		return &Error{File: file, Line: line, Column: col, Msg: rest}
	}
	return &Error{File: file, Msg: firstLine(msg)}
}

// leadingPosition parses "[3:5] message" as go-yaml formats wrapped errors.
func leadingPosition(msg string) (line, col int, rest string, ok bool) {
	if _, err := fmt.Sscanf(msg, "[%d:%d]", &line, &col); err != nil {
		return 0, 0, "", false
	}
	if i := strings.Index(msg, "]"); i >= 0 {
		rest = strings.TrimSpace(firstLine(msg[i+1:]))
	}
	return line, col, rest, true
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
