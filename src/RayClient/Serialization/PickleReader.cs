using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace RayClient.Serialization;

/// <summary>
/// A tolerant unpickler for protocols 0–5 that never imports or executes anything: the few
/// Python types with a .NET counterpart are evaluated (see the README's value mapping), every
/// other global becomes a <see cref="PyGlobal"/> and every other call a <see cref="PyObject"/>.
/// Persistent ids go to an <see cref="IPickleStubResolver"/>.
/// </summary>
/// <remarks>
/// Hand-written: a library unpickler such as Razorvine's cannot be subclassed for this: only <c>persistentLoad</c> and
/// <c>nextBuffer</c> are virtual, unknown globals go through a static exact-name registry to a
/// constructor that rejects arguments, <c>REDUCE</c> casts its callable to a constructor, and dicts
/// are <c>Hashtable</c>s. <c>array.array</c> is read by <see cref="PyArrays"/>.
/// One instance reads one pickle; create one per call (they are cheap).
/// </remarks>
internal sealed class PickleReader
{
    private const string TracebackMarker = "Traceback (most recent call last)";
    private const int MaxIntegerDigits = 4300;

    private static readonly object[] SmallInts = CreateSmallInts();
    private static readonly object BoxedTrue = true;
    private static readonly object BoxedFalse = false;
    private static readonly Dictionary<(string Module, string Name), Evaluator> Evaluators = CreateEvaluators();

    private readonly IPickleStubResolver? _resolver;
    private readonly bool _trackTracebacks;
    private readonly List<object?> _memo = [];
    private Dictionary<int, object?>? _sparseMemo;
    private object?[] _stack = new object?[16];
    private int _sp;
    private int[] _marks = new int[8];
    private int _mp;
    private int _pos;
    private bool _inResolver;

    private PickleReader(IPickleStubResolver? resolver, bool trackTracebacks)
    {
        _resolver = resolver;
        _trackTracebacks = trackTracebacks;
    }

    private delegate bool Evaluator(PyTuple args, out object? result);

    /// <summary>The longest string read that contains a Python traceback, when tracking was asked for.</summary>
    internal string? LongestTraceback { get; private set; }

    /// <summary>Copies a bytes payload; large ones skip the zeroing a plain new byte[] would do first.</summary>
    private static byte[] CopyBytes(ReadOnlySpan<byte> source)
    {
        var copy = source.Length >= 85_000 ? GC.AllocateUninitializedArray<byte>(source.Length) : new byte[source.Length];
        source.CopyTo(copy);
        return copy;
    }

    /// <summary>Unpickles <paramref name="data"/>.</summary>
    /// <param name="data">A complete pickle.</param>
    /// <param name="resolver">Turns persistent ids into objects; without one, the <see cref="PickleStub"/>s themselves are returned.</param>
    /// <exception cref="RaySerializationException">The data is not a valid pickle.</exception>
    public static object? Read(ReadOnlyMemory<byte> data, IPickleStubResolver? resolver = null) =>
        new PickleReader(resolver, trackTracebacks: false).Load(data.Span);

    /// <summary>Unpickles a pickle held in several segments (copied once into a pooled buffer when not contiguous).</summary>
    public static object? Read(ReadOnlySequence<byte> data, IPickleStubResolver? resolver = null)
    {
        if (data.IsSingleSegment)
        {
            return Read(data.First, resolver);
        }

        var length = checked((int)data.Length);
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            data.CopyTo(rented);
            return new PickleReader(resolver, trackTracebacks: false).Load(rented.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Unpickles and also reports the longest string that holds a Python traceback (for error decoding).</summary>
    internal static object? ReadTrackingTracebacks(ReadOnlySpan<byte> data, out string? longestTraceback)
    {
        var reader = new PickleReader(null, trackTracebacks: true);
        var value = reader.Load(data);
        longestTraceback = reader.LongestTraceback;
        return value;
    }

    private object? Load(ReadOnlySpan<byte> data)
    {
        try
        {
            return Run(data);
        }
        catch (Exception ex) when (!_inResolver && ex is IndexOutOfRangeException or ArgumentException or InvalidCastException or FormatException or OverflowException or InvalidOperationException or InsufficientExecutionStackException)
        {
            throw Malformed(ex.Message, ex);
        }
    }

    // ------------------------------------------------------------------------------------------
    // The opcode loop
    // ------------------------------------------------------------------------------------------

    private object? Run(ReadOnlySpan<byte> d)
    {
        while (true)
        {
            if (_pos >= d.Length)
            {
                throw Malformed("the pickle ends without a STOP opcode");
            }

            var op = d[_pos++];
            switch (op)
            {
                case PickleOpcodes.Stop:
                    if (_sp == 0)
                    {
                        throw Malformed("STOP with an empty stack");
                    }

                    return _stack[--_sp];
                case PickleOpcodes.Mark:
                    PushMark();
                    break;
                case PickleOpcodes.Pop:
                    if (_sp > (_mp > 0 ? _marks[_mp - 1] : 0))
                    {
                        _stack[--_sp] = null;
                    }
                    else
                    {
                        PopMark();
                    }

                    break;
                case PickleOpcodes.PopMark:
                    _sp = PopMark();
                    break;
                case PickleOpcodes.Dup:
                    Push(Peek());
                    break;

                // Numbers.
                case PickleOpcodes.NewTrue:
                    Push(BoxedTrue);
                    break;
                case PickleOpcodes.NewFalse:
                    Push(BoxedFalse);
                    break;
                case PickleOpcodes.None:
                    Push(null);
                    break;
                case PickleOpcodes.BinInt1:
                    Push(SmallInts[Take(d, 1)[0]]);
                    break;
                case PickleOpcodes.BinInt2:
                    Push(SmallInt(BinaryPrimitives.ReadUInt16LittleEndian(Take(d, 2))));
                    break;
                case PickleOpcodes.BinInt:
                    Push(SmallInt(BinaryPrimitives.ReadInt32LittleEndian(Take(d, 4))));
                    break;
                case PickleOpcodes.Long1:
                    Push(DecodeLong(Take(d, Take(d, 1)[0])));
                    break;
                case PickleOpcodes.Long4:
                    Push(DecodeLong(Take(d, BinaryPrimitives.ReadInt32LittleEndian(Take(d, 4)))));
                    break;
                case PickleOpcodes.BinFloat:
                    Push(BinaryPrimitives.ReadDoubleBigEndian(Take(d, 8)));
                    break;
                case PickleOpcodes.Int:
                    Push(ParseIntLine(ReadLine(d)));
                    break;
                case PickleOpcodes.Long:
                    Push(ParseLongLine(ReadLine(d)));
                    break;
                case PickleOpcodes.Float:
                    Push(ParseFloatLine(ReadLine(d)));
                    break;

                // Strings and bytes.
                case PickleOpcodes.ShortBinUnicode:
                    PushString(PyUtf8.Decode(Take(d, Take(d, 1)[0])));
                    break;
                case PickleOpcodes.BinUnicode:
                    PushString(PyUtf8.Decode(Take(d, BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4)))));
                    break;
                case PickleOpcodes.BinUnicode8:
                    PushString(PyUtf8.Decode(Take(d, BinaryPrimitives.ReadUInt64LittleEndian(Take(d, 8)))));
                    break;
                case PickleOpcodes.Unicode:
                    PushString(DecodeRawUnicodeEscape(ReadLine(d)));
                    break;
                case PickleOpcodes.String:
                    PushString(DecodeStringLiteral(ReadLine(d)));
                    break;
                case PickleOpcodes.BinString:
                    PushString(Encoding.Latin1.GetString(Take(d, BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4)))));
                    break;
                case PickleOpcodes.ShortBinString:
                    PushString(Encoding.Latin1.GetString(Take(d, Take(d, 1)[0])));
                    break;
                case PickleOpcodes.ShortBinBytes:
                    Push(Take(d, Take(d, 1)[0]).ToArray());
                    break;
                case PickleOpcodes.BinBytes:
                    Push(CopyBytes(Take(d, BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4)))));
                    break;
                case PickleOpcodes.BinBytes8:
                case PickleOpcodes.ByteArray8:
                    Push(CopyBytes(Take(d, BinaryPrimitives.ReadUInt64LittleEndian(Take(d, 8)))));
                    break;

                // Containers.
                case PickleOpcodes.EmptyTuple:
                    Push(PyTuple.Empty);
                    break;
                case PickleOpcodes.Tuple1:
                    _stack[_sp - 1] = PyTuple.Own([Peek()]);
                    break;
                case PickleOpcodes.Tuple2:
                {
                    var b = Pop();
                    var a = Pop();
                    Push(PyTuple.Own([a, b]));
                    break;
                }

                case PickleOpcodes.Tuple3:
                {
                    var c = Pop();
                    var b = Pop();
                    var a = Pop();
                    Push(PyTuple.Own([a, b, c]));
                    break;
                }

                case PickleOpcodes.Tuple:
                    Push(PyTuple.Own(PopItems()));
                    break;
                case PickleOpcodes.EmptyList:
                    Push(new List<object?>());
                    break;
                case PickleOpcodes.List:
                    Push(new List<object?>(PopItems()));
                    break;
                case PickleOpcodes.Append:
                {
                    var value = Pop();
                    AppendItems(Peek(), [value]);
                    break;
                }

                case PickleOpcodes.Appends:
                {
                    var items = PopItems();
                    AppendItems(Peek(), items);
                    break;
                }

                case PickleOpcodes.EmptyDict:
                    Push(NewDict());
                    break;
                case PickleOpcodes.Dict:
                {
                    var dict = NewDict();
                    SetItems(dict, PopItems());
                    Push(dict);
                    break;
                }

                case PickleOpcodes.SetItem:
                {
                    var value = Pop();
                    var key = Pop();
                    SetItems(Peek(), [key, value]);
                    break;
                }

                case PickleOpcodes.SetItems:
                {
                    var items = PopItems();
                    SetItems(Peek(), items);
                    break;
                }

                case PickleOpcodes.EmptySet:
                    Push(new HashSet<object?>(PyValueComparer.Instance));
                    break;
                case PickleOpcodes.AddItems:
                {
                    var items = PopItems();
                    if (Peek() is HashSet<object?> set)
                    {
                        set.UnionWith(items);
                    }
                    else
                    {
                        throw Malformed($"ADDITEMS on a {PyTypeName.Of(Peek())}");
                    }

                    break;
                }

                case PickleOpcodes.FrozenSet:
                    Push(new HashSet<object?>(PopItems(), PyValueComparer.Instance));
                    break;

                // Memo.
                case PickleOpcodes.Memoize:
                    PutMemo(_memo.Count + (_sparseMemo?.Count ?? 0));
                    break;
                case PickleOpcodes.BinPut:
                    PutMemo(Take(d, 1)[0]);
                    break;
                case PickleOpcodes.LongBinPut:
                    PutMemo(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4))));
                    break;
                case PickleOpcodes.Put:
                    PutMemo(ParseInt32(ReadLine(d)));
                    break;
                case PickleOpcodes.BinGet:
                    Push(GetMemo(Take(d, 1)[0]));
                    break;
                case PickleOpcodes.LongBinGet:
                    Push(GetMemo(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Take(d, 4)))));
                    break;
                case PickleOpcodes.Get:
                    Push(GetMemo(ParseInt32(ReadLine(d))));
                    break;

                // Globals, calls and state.
                case PickleOpcodes.Global:
                {
                    var module = PyUtf8.Decode(ReadLine(d));
                    var name = PyUtf8.Decode(ReadLine(d));
                    Push(CreateGlobal(module, name));
                    break;
                }

                case PickleOpcodes.StackGlobal:
                {
                    var name = Pop() as string ?? throw Malformed("STACK_GLOBAL needs a str name");
                    var module = Pop() as string ?? throw Malformed("STACK_GLOBAL needs a str module");
                    Push(CreateGlobal(module, name));
                    break;
                }

                case PickleOpcodes.Reduce:
                {
                    var args = Pop();
                    var callable = Pop();
                    Push(Call(callable, args, isNewObj: false, kwargs: null));
                    break;
                }

                case PickleOpcodes.NewObj:
                {
                    var args = Pop();
                    var cls = Pop();
                    Push(Call(cls, args, isNewObj: true, kwargs: null));
                    break;
                }

                case PickleOpcodes.NewObjEx:
                {
                    var kwargs = Pop();
                    var args = Pop();
                    var cls = Pop();
                    Push(Call(cls, args, isNewObj: true, kwargs));
                    break;
                }

                case PickleOpcodes.Inst:
                {
                    var module = PyUtf8.Decode(ReadLine(d));
                    var name = PyUtf8.Decode(ReadLine(d));
                    var args = PopItems();
                    Push(Call(CreateGlobal(module, name), PyTuple.Own(args), isNewObj: false, kwargs: null));
                    break;
                }

                case PickleOpcodes.Obj:
                {
                    var items = PopItems();
                    if (items.Length == 0)
                    {
                        throw Malformed("OBJ without a class");
                    }

                    Push(Call(items[0], PyTuple.Own(items[1..]), isNewObj: false, kwargs: null));
                    break;
                }

                case PickleOpcodes.Build:
                {
                    var state = Pop();
                    Build(Peek(), state);
                    break;
                }

                case PickleOpcodes.BinPersId:
                    Push(LoadPersistent(Pop()));
                    break;
                case PickleOpcodes.PersId:
                    Push(LoadPersistent(Encoding.ASCII.GetString(ReadLine(d))));
                    break;

                // Framing and protocol.
                case PickleOpcodes.Proto:
                {
                    var protocol = Take(d, 1)[0];
                    if (protocol > PickleOpcodes.HighestProtocol)
                    {
                        throw Malformed($"unsupported pickle protocol {protocol}");
                    }

                    break;
                }

                case PickleOpcodes.Frame:
                    Take(d, 8);
                    break;
                case PickleOpcodes.ReadOnlyBuffer:
                    break;
                case PickleOpcodes.NextBuffer:
                    throw Malformed("the pickle refers to an out-of-band buffer (NEXT_BUFFER), which Ray does not send");
                case PickleOpcodes.Ext1:
                case PickleOpcodes.Ext2:
                case PickleOpcodes.Ext4:
                    throw Malformed("the pickle uses the copyreg extension registry (EXT1/EXT2/EXT4), which cannot be resolved without Python");
                default:
                    throw Malformed($"invalid opcode 0x{op:x2}");
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Stack, marks, memo
    // ------------------------------------------------------------------------------------------

    private void Push(object? value)
    {
        if (_sp == _stack.Length)
        {
            Array.Resize(ref _stack, _stack.Length * 2);
        }

        _stack[_sp++] = value;
    }

    private void PushString(string value)
    {
        if (_trackTracebacks && value.Length > (LongestTraceback?.Length ?? 0) && value.Contains(TracebackMarker, StringComparison.Ordinal))
        {
            LongestTraceback = value;
        }

        Push(value);
    }

    private object? Pop()
    {
        if (_sp <= (_mp > 0 ? _marks[_mp - 1] : 0))
        {
            throw Malformed("stack underflow");
        }

        var value = _stack[--_sp];
        _stack[_sp] = null;
        return value;
    }

    private object? Peek()
    {
        if (_sp <= (_mp > 0 ? _marks[_mp - 1] : 0))
        {
            throw Malformed("stack underflow");
        }

        return _stack[_sp - 1];
    }

    private void PushMark()
    {
        if (_mp == _marks.Length)
        {
            Array.Resize(ref _marks, _marks.Length * 2);
        }

        _marks[_mp++] = _sp;
    }

    private int PopMark()
    {
        if (_mp == 0)
        {
            throw Malformed("no MARK on the stack");
        }

        return _marks[--_mp];
    }

    private object?[] PopItems()
    {
        var start = PopMark();
        var items = _sp == start ? [] : _stack[start.._sp];
        Array.Clear(_stack, start, _sp - start);
        _sp = start;
        return items;
    }

    private void PutMemo(int index)
    {
        var value = Peek();
        if (index == _memo.Count)
        {
            _memo.Add(value);
            _sparseMemo?.Remove(index);
        }
        else if (index < _memo.Count)
        {
            _memo[index] = value;
        }
        else
        {
            (_sparseMemo ??= [])[index] = value;
        }
    }

    private object? GetMemo(int index)
    {
        if (index < _memo.Count)
        {
            return _memo[index];
        }

        if (_sparseMemo is not null && _sparseMemo.TryGetValue(index, out var value))
        {
            return value;
        }

        throw Malformed($"memo key {index} was never stored");
    }

    // ------------------------------------------------------------------------------------------
    // Reading primitives
    // ------------------------------------------------------------------------------------------

    private ReadOnlySpan<byte> Take(ReadOnlySpan<byte> d, ulong count)
    {
        if (count > (ulong)(d.Length - _pos))
        {
            throw Malformed($"truncated: {count} bytes needed, {d.Length - _pos} left");
        }

        var result = d.Slice(_pos, (int)count);
        _pos += (int)count;
        return result;
    }

    private ReadOnlySpan<byte> Take(ReadOnlySpan<byte> d, int count) =>
        count < 0 ? throw Malformed("negative length") : Take(d, (ulong)count);

    private ReadOnlySpan<byte> ReadLine(ReadOnlySpan<byte> d)
    {
        var end = d[_pos..].IndexOf((byte)'\n');
        if (end < 0)
        {
            throw Malformed("truncated: a text argument has no end of line");
        }

        var line = d.Slice(_pos, end);
        _pos += end + 1;
        return line;
    }

    private static object[] CreateSmallInts()
    {
        var ints = new object[256];
        for (var i = 0; i < ints.Length; i++)
        {
            ints[i] = i;
        }

        return ints;
    }

    private static object SmallInt(int value) => (uint)value < 256 ? SmallInts[value] : value;

    /// <summary>A Python int as int, long or BigInteger, the smallest that holds it.</summary>
    internal static object NormalizeInteger(BigInteger value) =>
        value >= int.MinValue && value <= int.MaxValue ? SmallInt((int)value)
        : value >= long.MinValue && value <= long.MaxValue ? (object)(long)value
        : (object)value;

    private static object DecodeLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return SmallInts[0];
        }

        if (bytes.Length <= 8)
        {
            // Sign-extend the little-endian two's complement into a long.
            long value = (sbyte)bytes[^1];
            for (var i = bytes.Length - 2; i >= 0; i--)
            {
                value = (value << 8) | bytes[i];
            }

            return value >= int.MinValue && value <= int.MaxValue ? SmallInt((int)value) : value;
        }

        return NormalizeInteger(new BigInteger(bytes, isUnsigned: false, isBigEndian: false));
    }

    private object ParseIntLine(ReadOnlySpan<byte> line)
    {
        // Protocol 0 writes bools as "I01"/"I00".
        if (line.SequenceEqual("01"u8))
        {
            return BoxedTrue;
        }

        if (line.SequenceEqual("00"u8))
        {
            return BoxedFalse;
        }

        return ParseLongLine(line);
    }

    private object ParseLongLine(ReadOnlySpan<byte> line)
    {
        var text = Encoding.ASCII.GetString(line).Trim();
        if (text.EndsWith('L'))
        {
            text = text[..^1];
        }

        // Python refuses int text above sys.int_info.default_max_str_digits (4300) digits, in
        // pickles too; parsing more would take quadratic time.
        var digits = text.Length - (text.StartsWith('-') || text.StartsWith('+') ? 1 : 0);
        if (digits > MaxIntegerDigits)
        {
            throw Malformed(string.Create(CultureInfo.InvariantCulture, $"an integer of {digits} digits exceeds Python's limit of {MaxIntegerDigits} digits for integer text"));
        }

        return BigInteger.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
            ? NormalizeInteger(value)
            : throw Malformed($"invalid integer '{Excerpt(text)}'");
    }

    /// <summary>At most the first 40 characters of peer-supplied text, for messages.</summary>
    private static string Excerpt(string text) => text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "…");

    private int ParseInt32(ReadOnlySpan<byte> line) =>
        int.TryParse(Encoding.ASCII.GetString(line), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw Malformed("invalid memo index");

    private object ParseFloatLine(ReadOnlySpan<byte> line)
    {
        var text = Encoding.ASCII.GetString(line).Trim();
        switch (text.ToLowerInvariant())
        {
            case "nan":
            case "-nan":
                return double.NaN;
            case "inf":
                return double.PositiveInfinity;
            case "-inf":
                return double.NegativeInfinity;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw Malformed($"invalid float '{Excerpt(text)}'");
    }

    /// <summary>Python's <c>raw-unicode-escape</c> (protocol 0 <c>UNICODE</c>): Latin-1 bytes plus <c>\uXXXX</c>/<c>\UXXXXXXXX</c>.</summary>
    private static string DecodeRawUnicodeEscape(ReadOnlySpan<byte> line)
    {
        var sb = new StringBuilder(line.Length);
        for (var i = 0; i < line.Length; i++)
        {
            var b = line[i];
            if (b == '\\' && i + 1 < line.Length && (line[i + 1] == 'u' || line[i + 1] == 'U'))
            {
                var digits = line[i + 1] == 'u' ? 4 : 8;
                if (i + 2 + digits <= line.Length
                    && int.TryParse(Encoding.ASCII.GetString(line.Slice(i + 2, digits)), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var cp))
                {
                    if (cp < 0x10000)
                    {
                        sb.Append((char)cp);
                    }
                    else
                    {
                        sb.Append(char.ConvertFromUtf32(cp));
                    }

                    i += 1 + digits;
                    continue;
                }
            }

            sb.Append((char)b);
        }

        return sb.ToString();
    }

    /// <summary>A Python 2 <c>str</c> literal (protocol 0 <c>STRING</c>), quoted and backslash-escaped; decoded as Latin-1.</summary>
    private string DecodeStringLiteral(ReadOnlySpan<byte> line)
    {
        if (line.Length < 2 || (line[0] != '\'' && line[0] != '"') || line[^1] != line[0])
        {
            throw Malformed("the STRING argument is not quoted");
        }

        var body = line[1..^1];
        var sb = new StringBuilder(body.Length);
        for (var i = 0; i < body.Length; i++)
        {
            var b = body[i];
            if (b != '\\' || i + 1 == body.Length)
            {
                sb.Append((char)b);
                continue;
            }

            var e = body[++i];
            var simple = e switch
            {
                (byte)'n' => '\n',
                (byte)'r' => '\r',
                (byte)'t' => '\t',
                (byte)'a' => '\a',
                (byte)'b' => '\b',
                (byte)'f' => '\f',
                (byte)'v' => '\v',
                _ => '\0',
            };
            if (simple != '\0')
            {
                sb.Append(simple);
                continue;
            }

            switch (e)
            {
                case (byte)'\n':
                    break; // a line continuation
                case (byte)'x' when i + 2 < body.Length:
                    sb.Append((char)int.Parse(Encoding.ASCII.GetString(body.Slice(i + 1, 2)), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    i += 2;
                    break;
                case >= (byte)'0' and <= (byte)'7':
                {
                    var value = e - '0';
                    for (var k = 0; k < 2 && i + 1 < body.Length && body[i + 1] is >= (byte)'0' and <= (byte)'7'; k++)
                    {
                        value = (value * 8) + (body[++i] - '0');
                    }

                    sb.Append((char)(value & 0xff));
                    break;
                }

                default:
                    if (e is (byte)'\\' or (byte)'\'' or (byte)'"')
                    {
                        sb.Append((char)e);
                    }
                    else
                    {
                        sb.Append('\\').Append((char)e);
                    }

                    break;
            }
        }

        return sb.ToString();
    }

    // ------------------------------------------------------------------------------------------
    // Containers and objects
    // ------------------------------------------------------------------------------------------

    private static Dictionary<object, object?> NewDict() => new(PyValueComparer.Instance);

    private void AppendItems(object? target, object?[] items)
    {
        switch (target)
        {
            case List<object?> list:
                list.AddRange(items);
                break;
            case PyObject obj:
                (obj.ListItemsBuilder ??= []).AddRange(items);
                break;
            default:
                throw Malformed($"APPEND to a {PyTypeName.Of(target)}");
        }
    }

    private void SetItems(object? target, object?[] items)
    {
        if (items.Length % 2 != 0)
        {
            throw Malformed("SETITEMS with an odd number of items");
        }

        var dict = target switch
        {
            Dictionary<object, object?> d => d,
            PyObject obj => obj.DictItemsBuilder ??= NewDict(),
            _ => throw Malformed($"SETITEM on a {PyTypeName.Of(target)}"),
        };

        for (var i = 0; i < items.Length; i += 2)
        {
            dict[items[i] ?? throw NoneKey()] = items[i + 1];
        }
    }

    private static RaySerializationException NoneKey() =>
        new("The Python dict has None as a key, which a .NET Dictionary cannot hold.");

    private static void Build(object? target, object? state)
    {
        if (target is not PyObject obj)
        {
            // An evaluated value (an OrderedDict, a PickleStub…) carries no state we keep.
            return;
        }

        if (obj.State is Dictionary<object, object?> existing && state is Dictionary<object, object?> more)
        {
            foreach (var (key, value) in more)
            {
                existing[key] = value;
            }
        }
        else
        {
            obj.State = state;
        }
    }

    private static PyGlobal CreateGlobal(string module, string name)
    {
        // Python 2 names, as Python 3's Unpickler maps them with fix_imports=True.
        module = module switch
        {
            "__builtin__" or "exceptions" => "builtins",
            "copy_reg" => "copyreg",
            _ => module,
        };
        return new PyGlobal(module, name);
    }

    private object? Call(object? callable, object? args, bool isNewObj, object? kwargs)
    {
        if (callable is null)
        {
            throw Malformed("calling None");
        }

        var tuple = args switch
        {
            PyTuple t => t,
            List<object?> l => PyTuple.Own([.. l]),
            _ => throw Malformed($"call arguments are a {PyTypeName.Of(args)}, not a tuple"),
        };

        Dictionary<string, object?>? keywords = null;
        if (kwargs is Dictionary<object, object?> { Count: > 0 } kw)
        {
            keywords = new Dictionary<string, object?>(kw.Count, StringComparer.Ordinal);
            foreach (var (key, value) in kw)
            {
                keywords[key as string ?? throw Malformed("keyword argument names must be str")] = value;
            }
        }

        if (keywords is null && callable is PyGlobal global && FindEvaluator(global) is { } evaluator)
        {
            try
            {
                if (evaluator(tuple, out var result))
                {
                    return result;
                }
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or OverflowException or InvalidCastException or IndexOutOfRangeException or NullReferenceException)
            {
                // Not the shape we know: keep the call as data.
            }
        }

        return new PyObject(callable, tuple, isNewObj, keywords);
    }

    private static Evaluator? FindEvaluator(PyGlobal global)
    {
        if (Evaluators.TryGetValue((global.Module, global.Name), out var evaluator))
        {
            return evaluator;
        }

        // cloudpickle's helpers live in cloudpickle.cloudpickle, cloudpickle_fast or Ray's vendored
        // ray.cloudpickle.* depending on the version (ray-versions.md row 17): match by name.
        if ((global.Module.EndsWith("cloudpickle", StringComparison.Ordinal) || global.Module.EndsWith("cloudpickle_fast", StringComparison.Ordinal))
            && global.Name is "_class_setstate" or "_function_setstate")
        {
            return AttachState;
        }

        return null;
    }

    private object? LoadPersistent(object? pid)
    {
        var stub = ToStub(pid)
            ?? throw new RaySerializationException($"Unsupported persistent id {PyRepr.Format(pid, 200)}: only Ray's PickleStub is understood.");
        if (_resolver is null)
        {
            return stub;
        }

        _inResolver = true;
        var resolved = _resolver.Resolve(stub);
        _inResolver = false;
        return resolved;
    }

    /// <summary>Every shape a PickleStub persistent id takes (spec §6.2).</summary>
    internal static PickleStub? ToStub(object? pid) => pid switch
    {
        PickleStub stub => stub,
        PyTuple fields => StubFromFields(fields),
        PyObject { Class: { Module: PickleStub.PythonModule, Name: PickleStub.PythonName } } obj =>
            obj.Callable is PyGlobal { Module: "copyreg" } && obj.Args.Count == 3 && obj.Args[2] is PyTuple state
                ? StubFromFields(state)
                : StubFromFields(obj.Args),
        _ => null,
    };

    private static PickleStub? StubFromFields(PyTuple fields) =>
        fields.Count == 5
        && fields[0] is string type
        && fields[1] is string clientId
        && fields[2] is byte[] refId
        && fields[3] is null or string
            ? new PickleStub(type, clientId, refId, (string?)fields[3], fields[4])
            : null;

    private RaySerializationException Malformed(string message, Exception? inner = null) =>
        new($"Malformed pickle at byte {Math.Max(0, _pos - 1)}: {message}", inner);

    // ------------------------------------------------------------------------------------------
    // Evaluated globals (a small, fixed set: nothing is imported)
    // ------------------------------------------------------------------------------------------

    private static Dictionary<(string Module, string Name), Evaluator> CreateEvaluators() => new()
    {
        [("builtins", "set")] = NewSet,
        [("builtins", "frozenset")] = NewSet,
        [("builtins", "bytearray")] = NewBytes,
        [("builtins", "bytes")] = NewBytes,
        [("_codecs", "encode")] = CodecsEncode,
        [("builtins", "complex")] = NewComplex,
        [("builtins", "getattr")] = GetAttr,
        [("collections", "OrderedDict")] = NewDictFrom,
        [("collections", "defaultdict")] = NewDefaultDict,
        [("collections", "Counter")] = NewDictFrom,
        [("copyreg", "_reconstructor")] = Reconstructor,
        [("decimal", "Decimal")] = NewDecimal,
        [("array", "array")] = NewArray,
        [("array", "_array_reconstructor")] = ReconstructArray,
        [("datetime", "datetime")] = PyDateTime.TryDateTime,
        [("datetime", "date")] = PyDateTime.TryDate,
        [("datetime", "time")] = PyDateTime.TryTime,
        [("datetime", "timedelta")] = PyDateTime.TryTimedelta,
        [(PickleStub.PythonModule, PickleStub.PythonName)] = NewStub,
    };

    private static bool NewSet(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count == 0)
        {
            result = new HashSet<object?>(PyValueComparer.Instance);
            return true;
        }

        if (args.Count == 1 && args[0] is IEnumerable items and not string and not byte[])
        {
            result = new HashSet<object?>(items.Cast<object?>(), PyValueComparer.Instance);
            return true;
        }

        return false;
    }

    private static bool NewBytes(PyTuple args, out object? result)
    {
        result = args.Count switch
        {
            0 => Array.Empty<byte>(),
            1 when args[0] is byte[] bytes => bytes.ToArray(),
            1 when args[0] is List<object?> ints => ints.Select(i => checked((byte)Convert.ToInt32(i, CultureInfo.InvariantCulture))).ToArray(),
            2 when args[0] is string text && args[1] is string encoding => Encode(text, encoding),
            _ => null,
        };
        return result is not null;
    }

    private static bool CodecsEncode(PyTuple args, out object? result)
    {
        result = args.Count == 2 && args[0] is string text && args[1] is string encoding ? Encode(text, encoding) : null;
        return result is not null;
    }

    private static byte[]? Encode(string text, string encoding) => encoding.ToLowerInvariant().Replace('_', '-') switch
    {
        "latin1" or "latin-1" or "iso-8859-1" or "iso8859-1" => Encoding.Latin1.GetBytes(text),
        "utf-8" or "utf8" => Encoding.UTF8.GetBytes(text),
        "ascii" => Encoding.ASCII.GetBytes(text),
        _ => null,
    };

    private static bool NewComplex(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count is 1 or 2 && IsReal(args[0]) && (args.Count == 1 || IsReal(args[1])))
        {
            result = new Complex(Convert.ToDouble(args[0], CultureInfo.InvariantCulture), args.Count == 2 ? Convert.ToDouble(args[1], CultureInfo.InvariantCulture) : 0);
            return true;
        }

        return false;

        static bool IsReal(object? v) => v is double or int or long or bool;
    }

    private static bool GetAttr(PyTuple args, out object? result)
    {
        // getattr(SomeClass, "method"): how protocol < 4 refers to a nested name.
        result = args.Count == 2 && args[0] is PyGlobal owner && args[1] is string name ? new PyGlobal(owner.Module, owner.Name + "." + name) : null;
        return result is not null;
    }

    private static bool NewDictFrom(PyTuple args, out object? result)
    {
        var dict = NewDict();
        result = dict;
        switch (args.Count)
        {
            case 0:
                return true;
            case 1 when args[0] is Dictionary<object, object?> source:
                foreach (var (key, value) in source)
                {
                    dict[key] = value;
                }

                return true;
            case 1 when args[0] is List<object?> pairs:
                foreach (var pair in pairs)
                {
                    if (pair is not IReadOnlyList<object?> { Count: 2 } kv || kv[0] is null)
                    {
                        return false;
                    }

                    dict[kv[0]!] = kv[1];
                }

                return true;
            default:
                return false;
        }
    }

    private static bool NewDefaultDict(PyTuple args, out object? result)
    {
        // defaultdict(factory): the factory is dropped, the items arrive with SETITEMS.
        result = args.Count <= 1 ? NewDict() : null;
        return result is not null;
    }

    private static bool Reconstructor(PyTuple args, out object? result)
    {
        // copyreg._reconstructor(cls, base, state): Ray's PickleStub shape (spec §6.2).
        result = args.Count == 3
                 && args[0] is PyGlobal { Module: PickleStub.PythonModule, Name: PickleStub.PythonName }
                 && args[2] is PyTuple fields
            ? StubFromFields(fields)
            : null;
        return result is not null;
    }

    private static bool NewStub(PyTuple args, out object? result)
    {
        result = StubFromFields(args);
        return result is not null;
    }

    private static bool NewDecimal(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count == 1 && args[0] is string text
            && decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            result = value;
            return true;
        }

        return false; // NaN, Infinity or out of System.Decimal's range: stays a PyObject with the text
    }

    private static bool NewArray(PyTuple args, out object? result)
    {
        // Protocol 0–2 form: array.array(typecode, [items]).
        result = args.Count == 2 && args[0] is string typecode && args[1] is List<object?> items
            ? PyArrays.FromList(typecode, items)
            : null;
        return result is not null;
    }

    private static bool ReconstructArray(PyTuple args, out object? result)
    {
        // Protocol 3+ form: array._array_reconstructor(array.array, typecode, machine_format, bytes).
        result = args.Count == 4 && args[1] is string typecode && args[2] is int format && args[3] is byte[] data
            ? PyArrays.FromMachineFormat(typecode, format, data)
            : null;
        return result is not null;
    }

    private static bool AttachState(PyTuple args, out object? result)
    {
        // cloudpickle's _class_setstate(cls, state) / _function_setstate(func, state): keep the
        // state on the class/function object so that it can be inspected (its result is popped).
        result = null;
        if (args.Count == 2 && args[0] is PyObject target)
        {
            target.State = args[1];
            result = target;
            return true;
        }

        return false;
    }
}
