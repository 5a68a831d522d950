package pth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ErrFormat is wrapped by every error about malformed or unsupported input.
var ErrFormat = errors.New("pth: invalid checkpoint")

// The Python values the interpreter builds. Integers are int64, or
// *big.Int when they do not fit; strings are Go strings and byte strings
// pyBytes.
type (
	pyNone  struct{}
	pyBytes []byte
	pyTuple []any
	pyList  struct{ items []any }
	pyDict  struct {
		keys  []any
		vals  []any
		index map[string]int
	}
	pyMark   struct{}
	pyGlobal struct{ module, name string }
)

func newDict() *pyDict { return &pyDict{index: map[string]int{}} }

// hashKey is a dict key's identity: Python's equality for the hashable
// values a checkpoint holds (1 == 1.0 == True is not honoured: a state dict
// does not mix them).
func hashKey(k any) (string, error) {
	switch v := k.(type) {
	case string:
		return "s" + v, nil
	case int64:
		return "i" + strconv.FormatInt(v, 10), nil
	case *big.Int:
		return "i" + v.String(), nil
	case bool:
		return "b" + strconv.FormatBool(v), nil
	case float64:
		return "f" + strconv.FormatFloat(v, 'g', -1, 64), nil
	case pyNone:
		return "n", nil
	case pyBytes:
		return "y" + string(v), nil
	case pyTuple:
		var b strings.Builder
		b.WriteString("t(")
		for _, e := range v {
			s, err := hashKey(e)
			if err != nil {
				return "", err
			}
			b.WriteString(strconv.Itoa(len(s)))
			b.WriteByte(':')
			b.WriteString(s)
		}
		b.WriteByte(')')
		return b.String(), nil
	}
	return "", fmt.Errorf("%w: unhashable dict key of type %s", ErrFormat, typeName(k))
}

func (d *pyDict) set(k, v any) error {
	h, err := hashKey(k)
	if err != nil {
		return err
	}
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case pyNone:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case pyBytes:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case pyMark:
		return "mark"
	case *pyGlobal:
		return v.module + "." + v.name
	case *storageRef:
		return "storage"
	case *view:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

// The globals a state dict needs. Storage types may only appear inside a
// persistent id; the functions are called by REDUCE.
const (
	globalOrderedDict      = "collections.OrderedDict"
	globalRebuildTensorV2  = "torch._utils._rebuild_tensor_v2"
	globalRebuildTensor    = "torch._utils._rebuild_tensor"
	globalRebuildParameter = "torch._utils._rebuild_parameter"
)

// storageTypes maps the torch storage classes to their element dtype.
var storageTypes = map[string]string{
	"FloatStorage":    "F32",
	"DoubleStorage":   "F64",
	"HalfStorage":     "F16",
	"BFloat16Storage": "BF16",
	"LongStorage":     "I64",
	"IntStorage":      "I32",
	"ShortStorage":    "I16",
	"CharStorage":     "I8",
	"ByteStorage":     "U8",
	"BoolStorage":     "BOOL",
}

func allowedGlobal(module, name string) bool {
	switch module + "." + name {
	case globalOrderedDict, globalRebuildTensorV2, globalRebuildTensor, globalRebuildParameter:
		return true
	}
	_, ok := storageTypes[name]
	return module == "torch" && ok
}

// unpickler interprets one pickle. persistentLoad resolves a persistent id
// (a storage); rebuild makes a tensor of a storage and its view.
type unpickler struct {
	data           []byte
	pos            int
	stack          []any
	marks          []int
	memo           map[int64]any
	persistentLoad func(pid any) (any, error)
}

func (u *unpickler) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: pickle byte %d: %s", ErrFormat, u.pos, fmt.Sprintf(format, args...))
}

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		return nil, u.errorf("%d bytes wanted, %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:], '\n')
	if i < 0 {
		return "", u.errorf("unterminated line")
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) uint(n int) (uint64, error) {
	b, err := u.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, u.errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 || (len(u.marks) > 0 && len(u.stack) <= u.marks[len(u.marks)-1]) {
		return nil, u.errorf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the items above the last mark and removes them and it.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.errorf("no mark on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) memoPut(i int64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	u.memo[i] = v
	return nil
}

func (u *unpickler) memoGet(i int64) error {
	v, ok := u.memo[i]
	if !ok {
		return u.errorf("memo %d not set", i)
	}
	u.push(v)
	return nil
}

// unpickle runs the pickle at the start of data and returns its value and
// the number of bytes it took.
func unpickle(data []byte, persistentLoad func(pid any) (any, error)) (any, int, error) {
	u := &unpickler{data: data, memo: map[int64]any{}, persistentLoad: persistentLoad}
	v, err := u.run()
	return v, u.pos, err
}

func (u *unpickler) run() (any, error) {
	for {
		ob, err := u.read(1)
		if err != nil {
			return nil, u.errorf("no STOP opcode")
		}
		op := ob[0]
		switch op {
		case 0x80: // PROTO
			p, err := u.uint(1)
			if err != nil {
				return nil, err
			}
			if p > 5 {
				return nil, u.errorf("pickle protocol %d", p)
			}
		case 0x95: // FRAME: an 8-byte length; the frame's opcodes follow inline
			if _, err := u.uint(8); err != nil {
				return nil, err
			}
		case '.': // STOP
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		case '(': // MARK
			u.marks = append(u.marks, len(u.stack))
		case '0': // POP
			if _, err := u.pop(); err != nil {
				if len(u.marks) > 0 && len(u.stack) == u.marks[len(u.marks)-1] {
					u.marks = u.marks[:len(u.marks)-1] // POP of a mark
					continue
				}
				return nil, err
			}
		case '1': // POP_MARK
			if _, err := u.popMark(); err != nil {
				return nil, err
			}
		case '2': // DUP
			v, err := u.top()
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 'N':
			u.push(pyNone{})
		case 0x88:
			u.push(true)
		case 0x89:
			u.push(false)
		case 'J': // BININT
			v, err := u.uint(4)
			if err != nil {
				return nil, err
			}
			u.push(int64(int32(uint32(v))))
		case 'K': // BININT1
			v, err := u.uint(1)
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case 'M': // BININT2
			v, err := u.uint(2)
			if err != nil {
				return nil, err
			}
			u.push(int64(v))
		case 0x8a, 0x8b: // LONG1, LONG4
			size := 1
			if op == 0x8b {
				size = 4
			}
			n, err := u.uint(size)
			if err != nil {
				return nil, err
			}
			if n > uint64(len(u.data)) {
				return nil, u.errorf("long of %d bytes", n)
			}
			b, err := u.read(int(n))
			if err != nil {
				return nil, err
			}
			u.push(decodeLong(b))
		case 'I', 'L': // INT, LONG (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			if op == 'I' && (s == "00" || s == "01") {
				u.push(s == "01")
				continue
			}
			s = strings.TrimSuffix(s, "L")
			b, ok := new(big.Int).SetString(s, 10)
			if !ok {
				return nil, u.errorf("bad integer %q", s)
			}
			u.push(normInt(b))
		case 'G': // BINFLOAT, big-endian
			b, err := u.read(8)
			if err != nil {
				return nil, err
			}
			u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		case 'F': // FLOAT (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, u.errorf("bad float %q", s)
			}
			u.push(f)
		case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e: // strings and bytes with a length
			var size int
			switch op {
			case 0x8c, 'U', 'C':
				size = 1
			case 0x8d, 0x8e:
				size = 8
			default:
				size = 4
			}
			n, err := u.uint(size)
			if err != nil {
				return nil, err
			}
			if n > uint64(len(u.data)) {
				return nil, u.errorf("string of %d bytes", n)
			}
			b, err := u.read(int(n))
			if err != nil {
				return nil, err
			}
			switch op {
			case 'B', 'C', 0x8e:
				u.push(pyBytes(append([]byte(nil), b...)))
			default:
				// BINSTRING and SHORT_BINSTRING are Python 2 str; legacy
				// checkpoints written by Python 2 hold ASCII names in them.
				u.push(string(b))
			}
		case 'P': // PERSID (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			if err := u.persid(s); err != nil {
				return nil, err
			}
		case 'Q': // BINPERSID
			pid, err := u.pop()
			if err != nil {
				return nil, err
			}
			if err := u.persid(pid); err != nil {
				return nil, err
			}
		case ')':
			u.push(pyTuple{})
		case ']':
			u.push(&pyList{})
		case '}':
			u.push(newDict())
		case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
			n := int(op-0x85) + 1
			t := make(pyTuple, n)
			for i := n - 1; i >= 0; i-- {
				if t[i], err = u.pop(); err != nil {
					return nil, err
				}
			}
			u.push(t)
		case 't': // TUPLE
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(pyTuple(items))
		case 'l': // LIST
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			u.push(&pyList{items: items})
		case 'd': // DICT
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			if len(items)%2 != 0 {
				return nil, u.errorf("DICT with an odd number of items")
			}
			d := newDict()
			for i := 0; i < len(items); i += 2 {
				if err := d.set(items[i], items[i+1]); err != nil {
					return nil, err
				}
			}
			u.push(d)
		case 'a': // APPEND
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			l, err := u.top()
			if err != nil {
				return nil, err
			}
			pl, ok := l.(*pyList)
			if !ok {
				return nil, u.errorf("APPEND to a %s", typeName(l))
			}
			pl.items = append(pl.items, v)
		case 'e': // APPENDS
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			l, err := u.top()
			if err != nil {
				return nil, err
			}
			pl, ok := l.(*pyList)
			if !ok {
				return nil, u.errorf("APPENDS to a %s", typeName(l))
			}
			pl.items = append(pl.items, items...)
		case 's': // SETITEM
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			k, err := u.pop()
			if err != nil {
				return nil, err
			}
			d, err := u.top()
			if err != nil {
				return nil, err
			}
			pd, ok := d.(*pyDict)
			if !ok {
				return nil, u.errorf("SETITEM on a %s", typeName(d))
			}
			if err := pd.set(k, v); err != nil {
				return nil, err
			}
		case 'u': // SETITEMS
			items, err := u.popMark()
			if err != nil {
				return nil, err
			}
			d, err := u.top()
			if err != nil {
				return nil, err
			}
			pd, ok := d.(*pyDict)
			if !ok {
				return nil, u.errorf("SETITEMS on a %s", typeName(d))
			}
			if len(items)%2 != 0 {
				return nil, u.errorf("SETITEMS with an odd number of items")
			}
			for i := 0; i < len(items); i += 2 {
				if err := pd.set(items[i], items[i+1]); err != nil {
					return nil, err
				}
			}
		case 'q', 'r': // BINPUT, LONG_BINPUT
			size := 1
			if op == 'r' {
				size = 4
			}
			i, err := u.uint(size)
			if err != nil {
				return nil, err
			}
			if err := u.memoPut(int64(i)); err != nil {
				return nil, err
			}
		case 'p', 'g': // PUT, GET (text)
			s, err := u.readLine()
			if err != nil {
				return nil, err
			}
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, u.errorf("bad memo index %q", s)
			}
			if op == 'p' {
				err = u.memoPut(i)
			} else {
				err = u.memoGet(i)
			}
			if err != nil {
				return nil, err
			}
		case 0x94: // MEMOIZE
			if err := u.memoPut(int64(len(u.memo))); err != nil {
				return nil, err
			}
		case 'h', 'j': // BINGET, LONG_BINGET
			size := 1
			if op == 'j' {
				size = 4
			}
			i, err := u.uint(size)
			if err != nil {
				return nil, err
			}
			if err := u.memoGet(int64(i)); err != nil {
				return nil, err
			}
		case 'c': // GLOBAL
			module, err := u.readLine()
			if err != nil {
				return nil, err
			}
			name, err := u.readLine()
			if err != nil {
				return nil, err
			}
			if err := u.global(module, name); err != nil {
				return nil, err
			}
		case 0x93: // STACK_GLOBAL
			n, err := u.pop()
			if err != nil {
				return nil, err
			}
			m, err := u.pop()
			if err != nil {
				return nil, err
			}
			ms, ok1 := m.(string)
			ns, ok2 := n.(string)
			if !ok1 || !ok2 {
				return nil, u.errorf("STACK_GLOBAL of a %s and a %s", typeName(m), typeName(n))
			}
			if err := u.global(ms, ns); err != nil {
				return nil, err
			}
		case 'R': // REDUCE
			args, err := u.pop()
			if err != nil {
				return nil, err
			}
			f, err := u.pop()
			if err != nil {
				return nil, err
			}
			t, ok := args.(pyTuple)
			if !ok {
				return nil, u.errorf("REDUCE with %s arguments", typeName(args))
			}
			v, err := u.call(f, t)
			if err != nil {
				return nil, err
			}
			u.push(v)
		case 0x81: // NEWOBJ: cls.__new__(cls, *args)
			args, err := u.pop()
			if err != nil {
				return nil, err
			}
			cls, err := u.pop()
			if err != nil {
				return nil, err
			}
			g, ok := cls.(*pyGlobal)
			if _, isTuple := args.(pyTuple); !ok || !isTuple || g.module+"."+g.name != globalOrderedDict {
				return nil, u.errorf("NEWOBJ of %s", typeName(cls))
			}
			u.push(newDict())
		case 'b': // BUILD
			state, err := u.pop()
			if err != nil {
				return nil, err
			}
			obj, err := u.top()
			if err != nil {
				return nil, err
			}
			// An OrderedDict's state is its instance dict: a state dict
			// carries its modules' versions in _metadata, which is
			// dropped. Nothing else is built.
			if _, ok := obj.(*pyDict); !ok {
				return nil, u.errorf("BUILD of a %s", typeName(obj))
			}
			if _, ok := state.(*pyDict); !ok {
				if _, none := state.(pyNone); !none {
					return nil, u.errorf("BUILD of a dict with a %s state", typeName(state))
				}
			}
		default:
			return nil, u.errorf("opcode 0x%02x (%q) is not supported in a state dict", op, rune(op))
		}
	}
}

func (u *unpickler) persid(pid any) error {
	if u.persistentLoad == nil {
		return u.errorf("persistent id where none may be")
	}
	v, err := u.persistentLoad(pid)
	if err != nil {
		return fmt.Errorf("pickle byte %d: %w", u.pos, err)
	}
	u.push(v)
	return nil
}

func (u *unpickler) global(module, name string) error {
	if !allowedGlobal(module, name) {
		return fmt.Errorf("%w: pickle byte %d: global %s.%s is not allowed: a state dict holds only tensors, dicts, lists and plain values (the file may contain code)", ErrFormat, u.pos, module, name)
	}
	u.push(&pyGlobal{module, name})
	return nil
}

// call applies one of the allowed functions.
func (u *unpickler) call(f any, args pyTuple) (any, error) {
	g, ok := f.(*pyGlobal)
	if !ok {
		return nil, u.errorf("REDUCE of a %s", typeName(f))
	}
	switch g.module + "." + g.name {
	case globalOrderedDict:
		d := newDict()
		if len(args) == 0 {
			return d, nil
		}
		if len(args) != 1 {
			return nil, u.errorf("OrderedDict with %d arguments", len(args))
		}
		var items []any
		switch a := args[0].(type) {
		case *pyList:
			items = a.items
		case pyTuple:
			items = a
		default:
			return nil, u.errorf("OrderedDict of a %s", typeName(args[0]))
		}
		for _, it := range items {
			kv, ok := it.(pyTuple)
			if !ok || len(kv) != 2 {
				return nil, u.errorf("OrderedDict item is a %s, not a pair", typeName(it))
			}
			if err := d.set(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		return d, nil
	case globalRebuildTensorV2, globalRebuildTensor:
		// (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
		if len(args) < 4 || len(args) > 7 {
			return nil, u.errorf("%s with %d arguments", g.name, len(args))
		}
		st, ok := args[0].(*storageRef)
		if !ok {
			return nil, u.errorf("%s of a %s, not a storage", g.name, typeName(args[0]))
		}
		off, ok := args[1].(int64)
		if !ok {
			return nil, u.errorf("%s: storage offset is a %s", g.name, typeName(args[1]))
		}
		size, err := intTuple(args[2])
		if err != nil {
			return nil, u.errorf("%s: size: %v", g.name, err)
		}
		stride, err := intTuple(args[3])
		if err != nil {
			return nil, u.errorf("%s: stride: %v", g.name, err)
		}
		// Built when the checkpoint is flattened: a legacy file's
		// storages come after the pickle.
		return &view{st: st, off: off, size: size, stride: stride}, nil
	case globalRebuildParameter:
		// (data, requires_grad, backward_hooks): the parameter's tensor.
		if len(args) != 3 {
			return nil, u.errorf("_rebuild_parameter with %d arguments", len(args))
		}
		t, ok := args[0].(*view)
		if !ok {
			return nil, u.errorf("_rebuild_parameter of a %s", typeName(args[0]))
		}
		return t, nil
	}
	return nil, u.errorf("%s.%s cannot be called", g.module, g.name)
}

func intTuple(v any) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("a %s, not a tuple", typeName(v))
	}
	out := make([]int64, len(t))
	for i, e := range t {
		n, ok := e.(int64)
		if !ok {
			return nil, fmt.Errorf("element %d is a %s", i, typeName(e))
		}
		out[i] = n
	}
	return out, nil
}

// decodeLong is pickle's little-endian two's complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(n)
}

func normInt(n *big.Int) any {
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}
