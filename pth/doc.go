// Package pth reads PyTorch checkpoint files (what torch.save writes for a
// state dict: the zip format of PyTorch 1.6 and later, and the older
// "legacy" format of a sequence of pickles followed by raw storages) without
// executing any code.
//
// A checkpoint's structure is a Python pickle, a program for a small stack
// machine whose GLOBAL and REDUCE opcodes can call any importable Python
// function. This package interprets the opcodes itself and resolves exactly
// the globals a state dict needs: collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 (and _rebuild_tensor, _rebuild_parameter)
// and the storage types (torch.FloatStorage, ...), the latter only inside
// persistent ids that name a storage. Any other global is refused with an
// error that names it. The values it builds are dicts, lists, tuples,
// strings, byte strings, integers, floats, booleans, None and tensors.
//
// Every size and offset read from the file is checked before it is used: a
// storage must have exactly the bytes its persistent id claims, a tensor's
// view (offset, shape, strides) must lie inside its storage, and no tensor
// may have more elements than its storage (an expanded view): so what Read
// allocates is bounded by the file's size. Malformed input gives an error
// wrapping ErrFormat, never a panic.
//
// Read flattens the top-level dict into named tensors: nested dicts join
// their keys with dots ({"params": {"conv.weight": t}} gives
// "params.conv.weight"), so that a caller can map names to its own. Tensors
// come out contiguous, row-major, little-endian, in the dtype names of
// safetensors (F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL).
package pth
