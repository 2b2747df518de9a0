// TorchUnpickler: a restricted reader for the `data.pkl` of a torch.save archive. It understands the
// pickle opcodes torch emits and a short list of globals (OrderedDict, the tensor rebuild functions,
// storage classes, dtypes) and builds plain values from them. Nothing is ever executed or imported:
// any other global, call or opcode is rejected with an error naming the file. Tensors come out as
// records (storage key, dtype, offset, size, stride); TorchZip turns them into views of the archive.

/// The globals a torch checkpoint may name; everything else is refused.
enum TorchGlobal {
    case orderedDict
    case rebuildTensorV2, rebuildParameter, rebuildFromTypeV2
    case storageType(name: String, dtype: DType?)
    case dtype(name: String, dtype: DType?)
    case tensorClass(name: String)

    /// `torch.<name>` storage classes and dtypes, with the engine dtype each holds (nil: unsupported).
    private static let storages: [String: DType?] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "LongStorage": .i64,
        "CharStorage": .i8, "DoubleStorage": nil, "IntStorage": nil, "ShortStorage": nil, "ByteStorage": nil,
        "BoolStorage": nil, "UntypedStorage": nil, "ComplexFloatStorage": nil, "ComplexDoubleStorage": nil,
    ]
    private static let dtypes: [String: DType?] = [
        "float32": .f32, "float": .f32, "float16": .f16, "half": .f16, "bfloat16": .bf16, "int64": .i64,
        "long": .i64, "int8": .i8, "float64": nil, "double": nil, "int32": nil, "int": nil, "int16": nil,
        "uint8": nil, "bool": nil,
    ]

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch._tensor", "_rebuild_from_type_v2"): self = .rebuildFromTypeV2
        case ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"): self = .tensorClass(name: "\(module).\(name)")
        case ("torch", _) where Self.storages[name] != nil: self = .storageType(name: name, dtype: Self.storages[name]!)
        case ("torch", _) where Self.dtypes[name] != nil: self = .dtype(name: name, dtype: Self.dtypes[name]!)
        default: return nil
        }
    }
}

/// A mutable list or dict: pickle's memo shares them, and APPEND/SETITEM mutate them in place.
final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var entries: [(key: PickleValue, value: PickleValue)] = [] }

/// The values the restricted unpickler can build.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue], depth: Int)  // depth: tuples nested inside, counting itself
    case list(PickleList)
    case dict(PickleDict)
    case global(TorchGlobal)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRecord)

    /// The Python type name, for messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global, .storage, .tensor: return "torch object"
        }
    }
}

/// Runs the pickle program in `bytes` (protocols 2–5) and returns the dict it leaves at STOP.
struct TorchUnpickler {
    let path: String
    let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    /// Every list and dict built, so ``dismantle()`` can empty them one by one: a deep or cyclic
    /// chain of containers would otherwise be released recursively (or never).
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []

    /// Tuples may nest this deep; torch's go three levels. Deeper chains could exhaust the stack when
    /// released, so they are refused.
    static let maxTupleDepth = 64

    /// Values the program may push or memoize in all: a torch state dict needs about 20 per tensor, so
    /// this allows some 200,000 tensors, while a file of repeated DUP / BINPUT opcodes cannot grow the
    /// stack or memo to gigabytes.
    static let maxValues = 1 << 22
    private var values = 0

    init(path: String, bytes: UnsafeRawBufferPointer) {
        self.path = path
        self.bytes = bytes
    }

    private func corrupt(_ reason: String) -> EngineError {
        .corruptFile(path: path, reason: "data.pkl: \(reason)")
    }

    /// Runs the program and returns the entries of the dict it builds (a state dict). Containers are
    /// dismantled afterwards: values in the entries that are lists or dicts come back empty.
    mutating func loadDict() throws -> [(key: PickleValue, value: PickleValue)] {
        defer { dismantle() }
        guard case .dict(let dict) = try run() else { throw corrupt("does not hold a dict of tensors") }
        return dict.entries
    }

    private mutating func dismantle() {
        for list in lists { list.items = [] }
        for dict in dicts { dict.entries = [] }
        (lists, dicts, stack, memo) = ([], [], [], [:])
    }

    private mutating func run() throws -> PickleValue {
        while true {
            let at = position
            let op = try readBytes(1)[0]
            values += 1
            guard values <= Self.maxValues else {
                throw corrupt("builds more than \(Self.maxValues) values (not a state dict torch would write)")
            }
            switch op {
            case 0x80: _ = try readBytes(1)  // PROTO
            case 0x95: _ = try readBytes(8)  // FRAME: length only, frames need no special handling
            case 0x2E:  // STOP
                guard let result = stack.popLast() else { throw corrupt("STOP with an empty stack") }
                return result
            case 0x28: marks.append(stack.count)  // MARK
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: stack.append(try top())  // DUP
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try readUInt(4))))))  // BININT
            case 0x4B: stack.append(.int(try readUInt(1)))  // BININT1
            case 0x4D: stack.append(.int(try readUInt(2)))  // BININT2
            case 0x8A: stack.append(.int(try readLong(length: try readUInt(1))))  // LONG1
            case 0x47:  // BINFLOAT: big-endian double
                let raw = try readBytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                stack.append(.float(Double(bitPattern: raw)))
            case 0x58: stack.append(.string(try readString(length: try readUInt(4))))  // BINUNICODE
            case 0x8C: stack.append(.string(try readString(length: try readUInt(1))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try readString(length: try readUInt(8))))  // BINUNICODE8
            case 0x42: stack.append(.bytes(Array(try readBytes(try readUInt(4)))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try readBytes(try readUInt(1)))))  // SHORT_BINBYTES
            case 0x8E: stack.append(.bytes(Array(try readBytes(try readUInt(8)))))  // BINBYTES8
            case 0x29: stack.append(.tuple([], depth: 1))  // EMPTY_TUPLE
            case 0x85: stack.append(try tuple(try popCount(1)))  // TUPLE1
            case 0x86: stack.append(try tuple(try popCount(2)))  // TUPLE2
            case 0x87: stack.append(try tuple(try popCount(3)))  // TUPLE3
            case 0x74: stack.append(try tuple(try popMark()))  // TUPLE
            case 0x5D: stack.append(.list(newList()))  // EMPTY_LIST
            case 0x6C:  // LIST
                let list = newList()
                list.items = try popMark()
                stack.append(.list(list))
            case 0x7D: stack.append(.dict(newDict()))  // EMPTY_DICT
            case 0x64:  // DICT
                let dict = newDict()
                try setItems(dict, try popMark())
                stack.append(.dict(dict))
            case 0x61:  // APPEND
                let item = try pop()
                try list(at: at).items.append(item)
            case 0x65:  // APPENDS
                let items = try popMark()
                try list(at: at).items.append(contentsOf: items)
            case 0x73:  // SETITEM
                let pair = try popCount(2)
                try setItems(try dict(at: at), pair)
            case 0x75:  // SETITEMS
                let items = try popMark()
                try setItems(try dict(at: at), items)
            case 0x71: memo[try readUInt(1)] = try top()  // BINPUT
            case 0x72: memo[try readUInt(4)] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let index = try readUInt(op == 0x68 ? 1 : 4)
                guard let value = memo[index] else { throw corrupt("memo entry \(index) is read before it is written") }
                stack.append(value)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try readLine()
                let name = try readLine()
                stack.append(.global(try global(module: module, name: name)))
            case 0x93:  // STACK_GLOBAL
                let parts = try popCount(2)
                guard case .string(let module) = parts[0], case .string(let name) = parts[1] else {
                    throw corrupt("STACK_GLOBAL at offset \(at) without two strings")
                }
                stack.append(.global(try global(module: module, name: name)))
            case 0x51: stack.append(try persistentLoad(try pop()))  // BINPERSID
            case 0x52:  // REDUCE
                let args = try pop()
                let callable = try pop()
                stack.append(try call(callable, args, at: at))
            case 0x81:  // NEWOBJ: cls.__new__(cls, *args), only for OrderedDict
                let args = try pop()
                let cls = try pop()
                guard case .global(.orderedDict) = cls, case .tuple(let items, _) = args, items.isEmpty else {
                    throw corrupt("NEWOBJ at offset \(at) builds something other than an empty OrderedDict")
                }
                stack.append(.dict(newDict()))
            case 0x62:  // BUILD: object state (an OrderedDict's _metadata, a parameter's attributes) is dropped
                _ = try pop()
                _ = try top()
            default:
                throw corrupt("unsupported pickle opcode 0x\(String(op, radix: 16)) at offset \(at)")
            }
        }
    }

    // MARK: - reading the program

    /// The next `n` bytes (indexed from 0).
    private mutating func readBytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else { throw corrupt("ends early (offset \(position))") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + n])
    }

    /// An unsigned little-endian integer of `n` bytes (n ≤ 8; an 8-byte value must fit in Int).
    private mutating func readUInt(_ n: Int) throws -> Int {
        let raw = try readBytes(n).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard raw <= UInt64(Int.max) else { throw corrupt("length \(raw) at offset \(position - n) is too large") }
        return Int(raw)
    }

    /// LONG1's payload: a little-endian two's-complement integer of `length` bytes.
    private mutating func readLong(length: Int) throws -> Int {
        guard length <= 8 else { throw corrupt("integer of \(length) bytes at offset \(position) is too large") }
        let data = try readBytes(length)
        guard let last = data.last else { return 0 }
        var raw = data.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if last & 0x80 != 0 && length < 8 { raw |= ~UInt64(0) << (8 * UInt64(length)) }  // sign-extend
        return Int(Int64(bitPattern: raw))
    }

    private mutating func readString(length: Int) throws -> String {
        let start = position
        let data = try readBytes(length)
        let string = String(decoding: data, as: UTF8.self)
        guard string.utf8.elementsEqual(data) else { throw corrupt("string at offset \(start) is not valid UTF-8") }
        return string
    }

    /// A newline-terminated ASCII line (GLOBAL's operands).
    private mutating func readLine() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A), end - position <= 256 else {
            throw corrupt("GLOBAL operand at offset \(position) is not a short line")
        }
        let line = String(decoding: bytes[position..<end], as: UTF8.self)
        position = end + 1
        return line
    }

    // MARK: - the stack

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else {
            throw corrupt("stack underflow at offset \(position - 1)")
        }
        return value
    }

    private func top() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.last else {
            throw corrupt("stack underflow at offset \(position - 1)")
        }
        return value
    }

    private mutating func popCount(_ n: Int) throws -> [PickleValue] {
        guard stack.count - (marks.last ?? 0) >= n else { throw corrupt("stack underflow at offset \(position - 1)") }
        defer { stack.removeLast(n) }
        return Array(stack.suffix(n))
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw corrupt("no MARK before offset \(position - 1)") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private mutating func newList() -> PickleList {
        let list = PickleList()
        lists.append(list)
        return list
    }

    private mutating func newDict() -> PickleDict {
        let dict = PickleDict()
        dicts.append(dict)
        return dict
    }

    private func tuple(_ items: [PickleValue]) throws -> PickleValue {
        var depth = 1
        for case .tuple(_, let inner) in items { depth = max(depth, inner + 1) }
        guard depth <= Self.maxTupleDepth else { throw corrupt("tuples nest more than \(Self.maxTupleDepth) deep") }
        return .tuple(items, depth: depth)
    }

    private func list(at offset: Int) throws -> PickleList {
        guard case .list(let list) = try top() else { throw corrupt("APPEND at offset \(offset) without a list") }
        return list
    }

    private func dict(at offset: Int) throws -> PickleDict {
        guard case .dict(let dict) = try top() else { throw corrupt("SETITEM at offset \(offset) without a dict") }
        return dict
    }

    private func setItems(_ dict: PickleDict, _ items: [PickleValue]) throws {
        guard items.count % 2 == 0 else { throw corrupt("odd number of items for a dict") }
        for i in stride(from: 0, to: items.count, by: 2) {
            dict.entries.append((items[i], items[i + 1]))
        }
    }

    // MARK: - globals, persistent ids and calls

    private func global(module: String, name: String) throws -> TorchGlobal {
        guard let global = TorchGlobal(module: module, name: name) else {
            throw EngineError.corruptFile(
                path: path, reason: "pickle refers to \(module).\(name), which is not allowed")
        }
        return global
    }

    /// `("storage", storage type, key, location, numel)` → a storage reference.
    private func persistentLoad(_ id: PickleValue) throws -> PickleValue {
        guard case .tuple(let items, _) = id, items.count == 5, case .string("storage") = items[0],
            case .string(let key) = items[2], case .int(let numel) = items[4], numel >= 0
        else { throw corrupt("persistent id is not a storage record") }
        switch items[1] {
        case .global(.storageType(let name, let dtype)), .global(.dtype(let name, let dtype)):
            return .storage(TorchStorageRef(key: key, typeName: name, dtype: dtype, numel: numel))
        default:
            throw corrupt("storage '\(key)' has no storage type")
        }
    }

    /// REDUCE: only the allowed globals can be called.
    private mutating func call(_ callable: PickleValue, _ args: PickleValue, at offset: Int) throws -> PickleValue {
        guard case .global(let function) = callable, case .tuple(let arguments, _) = args else {
            throw corrupt("REDUCE at offset \(offset) calls a \(callable.kind) with \(args.kind) arguments")
        }
        switch function {
        case .orderedDict:
            let dict = newDict()
            if case .list(let pairs)? = arguments.first {  // OrderedDict([(k, v), …])
                for case .tuple(let pair, _) in pairs.items where pair.count == 2 {
                    dict.entries.append((pair[0], pair[1]))
                }
            }
            return .dict(dict)
        case .rebuildTensorV2:  // (storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
            guard arguments.count >= 4, case .storage(let storage) = arguments[0], case .int(let offset) = arguments[1],
                let size = ints(arguments[2]), let stride = ints(arguments[3])
            else { throw corrupt("_rebuild_tensor_v2 at offset \(offset) has unexpected arguments") }
            return .tensor(TorchTensorRecord(storage: storage, storageOffset: offset, size: size, stride: stride))
        case .rebuildParameter:  // (data, requires_grad, hooks)
            guard case .tensor? = arguments.first else {
                throw corrupt("_rebuild_parameter at offset \(offset) is not given a tensor")
            }
            return arguments[0]
        case .rebuildFromTypeV2:  // (func, new_type, args, state) → func(*args)
            guard arguments.count == 4, case .global(let inner) = arguments[0] else {
                throw corrupt("_rebuild_from_type_v2 at offset \(offset) has unexpected arguments")
            }
            switch inner {
            case .rebuildTensorV2, .rebuildParameter: return try call(arguments[0], arguments[2], at: offset)
            default: throw corrupt("_rebuild_from_type_v2 at offset \(offset) calls something other than a rebuild")
            }
        case .storageType(let name, _), .dtype(let name, _), .tensorClass(let name):
            throw corrupt("REDUCE at offset \(offset) calls \(name), which is not allowed")
        }
    }

    /// A tuple (or list) of ints.
    private func ints(_ value: PickleValue) -> [Int]? {
        let items: [PickleValue]
        switch value {
        case .tuple(let t, _): items = t
        case .list(let l): items = l.items
        default: return nil
        }
        var result: [Int] = []
        for case .int(let i) in items { result.append(i) }
        return result.count == items.count ? result : nil
    }
}
