using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Unicode;

namespace RayClient.Serialization;

/// <summary>
/// Pickles .NET values for Python (protocol 4 or 5). Hand-written rather than Razorvine's
/// <c>Pickler</c> so that the output is a list of pooled segments in which large byte payloads
/// are linked, not copied, and so that Ray's <c>PickleStub</c> persistent ids, <c>STACK_GLOBAL</c>
/// references and <c>REDUCE</c> calls can be written.
/// </summary>
/// <remarks>
/// No memo is written: an object referenced twice is pickled twice, and Python receives two equal
/// but distinct objects. A reference cycle is reported as an error once the nesting passes
/// <see cref="PickleWriterOptions.MaxDepth"/>. The value mapping is in the README.
/// </remarks>
internal sealed class PickleWriter
{
    private const int BatchSize = 1000; // as CPython's Pickler._BATCHSIZE

    private const string SupportedTypes =
        "null, bool, integers (incl. BigInteger), float, double, decimal, Complex, string, char, byte[]/Memory<byte>/ArraySegment<byte>, " +
        "PyTuple/ValueTuple/Tuple, dictionaries, sets, lists/arrays/other enumerables, enums, DateTime/DateTimeOffset/DateOnly/TimeOnly/TimeSpan, " +
        "PyGlobal, PyReduce, PyObject, PickleStub and ObjectRef/actor handles";

    private static readonly ConcurrentDictionary<Type, Action<PickleWriter, object>?> CollectionWriters = new();

    private readonly PickleBuffer _out = new();
    private readonly int _maxDepth;
    private int _depth;

    private PickleWriter(int maxDepth) => _maxDepth = maxDepth;

    /// <summary>Pickles <paramref name="value"/>.</summary>
    /// <returns>The pickle; dispose it once sent.</returns>
    /// <exception cref="RaySerializationException">The value contains something that has no Python counterpart, or is nested too deeply (a cycle).</exception>
    public static PickledData Serialize(object? value, PickleWriterOptions? options = null)
    {
        options ??= PickleWriterOptions.Default;
        if (options.Protocol is not (4 or 5))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Protocol, "The pickle protocol must be 4 or 5.");
        }

        var writer = new PickleWriter(options.MaxDepth);
        try
        {
            writer._out.WriteBytes(PickleOpcodes.Proto, (byte)options.Protocol);
            if (options.Framing)
            {
                writer._out.StartFraming();
            }

            writer.WriteValue(value);
            writer._out.WriteByte(PickleOpcodes.Stop);
            return writer._out.Build();
        }
        catch (PicklePathException ex)
        {
            writer._out.Abandon();
            throw ex.ToSerializationException(options.TaskArguments);
        }
        catch
        {
            writer._out.Abandon();
            throw;
        }
    }

    /// <summary>Pickles <paramref name="value"/> into one array (for small values such as options).</summary>
    public static byte[] SerializeToArray(object? value, PickleWriterOptions? options = null)
    {
        using var data = Serialize(value, options);
        return data.ToArray();
    }

    // ------------------------------------------------------------------------------------------
    // Dispatch
    // ------------------------------------------------------------------------------------------

    private void WriteValue(object? value)
    {
        _out.CommitFrameIfFull();
        switch (value)
        {
            case null:
                _out.WriteByte(PickleOpcodes.None);
                return;
            case string s:
                WriteString(s);
                return;
            case int i:
                WriteInt(i);
                return;
            case long l:
                WriteInt(l);
                return;
            case double d:
                WriteDouble(d);
                return;
            case bool b:
                _out.WriteByte(b ? PickleOpcodes.NewTrue : PickleOpcodes.NewFalse);
                return;
            case byte[] bytes:
                WriteBytes(bytes);
                return;
            case IPickleStubSource source:
                WriteStub(source);
                return;
            case PyTuple tuple:
                WriteTuple(tuple.AsSpan());
                return;
            case PyGlobal global:
                WriteGlobal(global.Module, global.Name);
                return;
            case PyReduce reduce:
                WriteReduce(reduce);
                return;
            case PyObject obj:
                WritePyObject(obj);
                return;
            case ITuple tuple:
                WriteITuple(tuple);
                return;
            default:
                if (!TryWriteScalar(value))
                {
                    WriteCollection(value);
                }

                return;
        }
    }

    /// <summary>The less common scalar types, kept out of <see cref="WriteValue"/> so that its stack frame stays small for deep nesting.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryWriteScalar(object value)
    {
        switch (value)
        {
            case float f:
                WriteDouble(f);
                return true;
            case Half h:
                WriteDouble((double)h);
                return true;
            case short s16:
                WriteInt(s16);
                return true;
            case ushort u16:
                WriteInt(u16);
                return true;
            case byte u8:
                WriteInt(u8);
                return true;
            case sbyte s8:
                WriteInt(s8);
                return true;
            case uint u32:
                WriteInt(u32);
                return true;
            case ulong u64:
                WriteUInt64(u64);
                return true;
            case nint n:
                WriteInt(n);
                return true;
            case nuint un:
                WriteUInt64(un);
                return true;
            case char c:
                WriteString(c.ToString());
                return true;
            case BigInteger big:
                WriteBigInteger(big);
                return true;
            case Int128 i128:
                WriteBigInteger(i128);
                return true;
            case UInt128 u128:
                WriteBigInteger(u128);
                return true;
            case decimal m:
                WriteGlobal("decimal", "Decimal");
                WriteString(m.ToString(CultureInfo.InvariantCulture));
                _out.WriteBytes(PickleOpcodes.Tuple1, PickleOpcodes.Reduce);
                return true;
            case Complex z:
                WriteGlobal("builtins", "complex");
                WriteDouble(z.Real);
                WriteDouble(z.Imaginary);
                _out.WriteBytes(PickleOpcodes.Tuple2, PickleOpcodes.Reduce);
                return true;
            case ReadOnlyMemory<byte> rom:
                WriteBytes(rom);
                return true;
            case Memory<byte> mem:
                WriteBytes(mem);
                return true;
            case ArraySegment<byte> segment:
                WriteBytes(segment);
                return true;
            case Enum e:
                WriteEnum(e);
                return true;
            case DateTime or DateTimeOffset or DateOnly or TimeOnly or TimeSpan or PyDateTime.TimeZoneValue:
                PyDateTime.Write(this, value);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Writes a value whose static type is known, without boxing primitive elements of typed collections.</summary>
    private void Write<T>(T value)
    {
        if (typeof(T) == typeof(int))
        {
            _out.CommitFrameIfFull();
            WriteInt((int)(object)value!);
        }
        else if (typeof(T) == typeof(long))
        {
            _out.CommitFrameIfFull();
            WriteInt((long)(object)value!);
        }
        else if (typeof(T) == typeof(double))
        {
            _out.CommitFrameIfFull();
            WriteDouble((double)(object)value!);
        }
        else if (typeof(T) == typeof(float))
        {
            _out.CommitFrameIfFull();
            WriteDouble((float)(object)value!);
        }
        else if (typeof(T) == typeof(bool))
        {
            _out.CommitFrameIfFull();
            _out.WriteByte((bool)(object)value! ? PickleOpcodes.NewTrue : PickleOpcodes.NewFalse);
        }
        else if (typeof(T) == typeof(short))
        {
            _out.CommitFrameIfFull();
            WriteInt((short)(object)value!);
        }
        else if (typeof(T) == typeof(ushort))
        {
            _out.CommitFrameIfFull();
            WriteInt((ushort)(object)value!);
        }
        else if (typeof(T) == typeof(uint))
        {
            _out.CommitFrameIfFull();
            WriteInt((uint)(object)value!);
        }
        else if (typeof(T) == typeof(ulong))
        {
            _out.CommitFrameIfFull();
            WriteUInt64((ulong)(object)value!);
        }
        else if (typeof(T) == typeof(sbyte))
        {
            _out.CommitFrameIfFull();
            WriteInt((sbyte)(object)value!);
        }
        else if (typeof(T) == typeof(byte))
        {
            _out.CommitFrameIfFull();
            WriteInt((byte)(object)value!);
        }
        else
        {
            WriteValue(value);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Scalars
    // ------------------------------------------------------------------------------------------

    internal void WriteInt(long value)
    {
        if (value >= 0 && value <= 0xff)
        {
            _out.WriteBytes(PickleOpcodes.BinInt1, (byte)value);
        }
        else if (value >= 0 && value <= 0xffff)
        {
            var span = _out.GetSpan(3);
            span[0] = PickleOpcodes.BinInt2;
            BinaryPrimitives.WriteUInt16LittleEndian(span[1..], (ushort)value);
            _out.Advance(3);
        }
        else if (value >= int.MinValue && value <= int.MaxValue)
        {
            var span = _out.GetSpan(5);
            span[0] = PickleOpcodes.BinInt;
            BinaryPrimitives.WriteInt32LittleEndian(span[1..], (int)value);
            _out.Advance(5);
        }
        else
        {
            // LONG1 with the shortest little-endian two's complement, as CPython's encode_long.
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
            var n = 8;
            while (n > 1 && ((bytes[n - 1] == 0 && bytes[n - 2] < 0x80) || (bytes[n - 1] == 0xff && bytes[n - 2] >= 0x80)))
            {
                n--;
            }

            var span = _out.GetSpan(2 + n);
            span[0] = PickleOpcodes.Long1;
            span[1] = (byte)n;
            bytes[..n].CopyTo(span[2..]);
            _out.Advance(2 + n);
        }
    }

    private void WriteUInt64(ulong value)
    {
        if (value <= long.MaxValue)
        {
            WriteInt((long)value);
            return;
        }

        var span = _out.GetSpan(11);
        span[0] = PickleOpcodes.Long1;
        span[1] = 9;
        BinaryPrimitives.WriteUInt64LittleEndian(span[2..], value);
        span[10] = 0;
        _out.Advance(11);
    }

    private void WriteBigInteger(BigInteger value)
    {
        if (value >= long.MinValue && value <= long.MaxValue)
        {
            WriteInt((long)value);
            return;
        }

        var n = value.GetByteCount();
        if (n < 256)
        {
            var span = _out.GetSpan(2 + n);
            span[0] = PickleOpcodes.Long1;
            span[1] = (byte)n;
            value.TryWriteBytes(span.Slice(2, n), out _);
            _out.Advance(2 + n);
        }
        else
        {
            var span = _out.GetSpan(5 + n);
            span[0] = PickleOpcodes.Long4;
            BinaryPrimitives.WriteInt32LittleEndian(span[1..], n);
            value.TryWriteBytes(span.Slice(5, n), out _);
            _out.Advance(5 + n);
        }
    }

    internal void WriteDouble(double value)
    {
        var span = _out.GetSpan(9);
        span[0] = PickleOpcodes.BinFloat;
        BinaryPrimitives.WriteDoubleBigEndian(span[1..], value);
        _out.Advance(9);
    }

    internal void WriteString(string value)
    {
        // Lone surrogates count 3 bytes both as U+FFFD and in Python's "surrogatepass" encoding.
        var count = Encoding.UTF8.GetByteCount(value);
        if (count < 256)
        {
            var span = _out.GetSpan(2 + count);
            span[0] = PickleOpcodes.ShortBinUnicode;
            span[1] = (byte)count;
            EncodeUtf8(value, span.Slice(2, count));
            _out.Advance(2 + count);
        }
        else if (count < PickleBuffer.LargePayload)
        {
            var span = _out.GetSpan(5 + count);
            span[0] = PickleOpcodes.BinUnicode;
            BinaryPrimitives.WriteInt32LittleEndian(span[1..], count);
            EncodeUtf8(value, span.Slice(5, count));
            _out.Advance(5 + count);
        }
        else
        {
            // Large strings go outside frames, as CPython does; encode straight into a pooled array.
            var pooled = ArrayPool<byte>.Shared.Rent(count);
            try
            {
                EncodeUtf8(value, pooled.AsSpan(0, count));
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(pooled);
                throw;
            }

            Span<byte> header = stackalloc byte[5];
            header[0] = PickleOpcodes.BinUnicode;
            BinaryPrimitives.WriteInt32LittleEndian(header[1..], count);
            _out.WriteLargeOwned(header, pooled, count);
        }
    }

    private static void EncodeUtf8(string value, Span<byte> destination)
    {
        if (Utf8.FromUtf16(value, destination, out _, out _, replaceInvalidSequences: false) != OperationStatus.Done)
        {
            PyUtf8.EncodeSurrogatePass(value, destination);
        }
    }

    internal void WriteBytes(ReadOnlyMemory<byte> value)
    {
        var n = value.Length;
        if (n < 256)
        {
            var span = _out.GetSpan(2 + n);
            span[0] = PickleOpcodes.ShortBinBytes;
            span[1] = (byte)n;
            value.Span.CopyTo(span[2..]);
            _out.Advance(2 + n);
        }
        else if (n < PickleBuffer.LargePayload)
        {
            var span = _out.GetSpan(5 + n);
            span[0] = PickleOpcodes.BinBytes;
            BinaryPrimitives.WriteInt32LittleEndian(span[1..], n);
            value.Span.CopyTo(span[5..]);
            _out.Advance(5 + n);
        }
        else
        {
            // Zero copy: the caller's memory becomes a segment of the output.
            Span<byte> header = stackalloc byte[5];
            header[0] = PickleOpcodes.BinBytes;
            BinaryPrimitives.WriteInt32LittleEndian(header[1..], n);
            _out.WriteLarge(header, value);
        }
    }

    private void WriteEnum(Enum value)
    {
        switch (Type.GetTypeCode(Enum.GetUnderlyingType(value.GetType())))
        {
            case TypeCode.UInt64:
            case TypeCode.UInt32:
            case TypeCode.UInt16:
            case TypeCode.Byte:
                WriteUInt64(Convert.ToUInt64(value, CultureInfo.InvariantCulture));
                break;
            default:
                WriteInt(Convert.ToInt64(value, CultureInfo.InvariantCulture));
                break;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Python objects
    // ------------------------------------------------------------------------------------------

    internal void WriteGlobal(string module, string name)
    {
        WriteString(module);
        WriteString(name);
        _out.WriteByte(PickleOpcodes.StackGlobal);
    }

    /// <summary>Writes <c>callable(*args)</c>: the callable must already be on the stack.</summary>
    internal void WriteCall(ReadOnlySpan<object?> args)
    {
        WriteTuple(args);
        _out.WriteByte(PickleOpcodes.Reduce);
    }

    private void WriteStub(IPickleStubSource source)
    {
        var stub = source.ToPickleStub() ?? throw new PicklePathException($"{source.GetType()}.ToPickleStub() returned null.");
        if (stub.Type is null || stub.ClientId is null || stub.RefId is null)
        {
            throw new PicklePathException($"The PickleStub of {source.GetType()} lacks its type, client id or ref id.");
        }

        // Ray's own encoding is copyreg._reconstructor(PickleStub, tuple, fields); calling the
        // class is simpler and builds the same PickleStub on the server (spec §6.2).
        WriteGlobal(PickleStub.PythonModule, PickleStub.PythonName);
        _out.WriteByte(PickleOpcodes.Mark);
        WriteString(stub.Type);
        WriteString(stub.ClientId);
        WriteBytes(stub.RefId);
        if (stub.Name is null)
        {
            _out.WriteByte(PickleOpcodes.None);
        }
        else
        {
            WriteString(stub.Name);
        }

        WriteNamed(stub.BaselineOptions, "baseline_options of the PickleStub");
        _out.WriteBytes(PickleOpcodes.Tuple, PickleOpcodes.Reduce);
        _out.WriteByte(PickleOpcodes.BinPersId);
    }

    private void WriteReduce(PyReduce reduce)
    {
        Enter();
        WriteNamed(reduce.Callable, "callable of PyReduce");
        try
        {
            WriteTuple((reduce.Args ?? PyTuple.Empty).AsSpan());
        }
        catch (PicklePathException ex) when (ex.Prepend(PathSegment.Named("arguments of PyReduce")))
        {
            throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
        }

        _out.WriteByte(PickleOpcodes.Reduce);
        _depth--;
    }

    private void WritePyObject(PyObject obj)
    {
        Enter();
        WriteNamed(obj.Callable, "callable of PyObject");
        WriteNamed(obj.Args, "arguments of PyObject");
        if (obj.Kwargs is { } kwargs)
        {
            WriteNamed(kwargs, "keyword arguments of PyObject");
            _out.WriteByte(PickleOpcodes.NewObjEx);
        }
        else
        {
            _out.WriteByte(obj.IsNewObj ? PickleOpcodes.NewObj : PickleOpcodes.Reduce);
        }

        if (obj.ListItemsBuilder is { Count: > 0 } items)
        {
            try
            {
                WriteBatches(CollectionsMarshal.AsSpan(items), PickleOpcodes.Appends);
            }
            catch (PicklePathException ex) when (ex.Prepend(PathSegment.Named("list items of PyObject")))
            {
                throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
            }
        }

        if (obj.DictItemsBuilder is { Count: > 0 } dictItems)
        {
            try
            {
                WriteDictItems(dictItems);
            }
            catch (PicklePathException ex) when (ex.Prepend(PathSegment.Named("dict items of PyObject")))
            {
                throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
            }
        }

        if (obj.State is not null)
        {
            WriteNamed(obj.State, "state of PyObject");
            _out.WriteByte(PickleOpcodes.Build);
        }

        _depth--;
    }

    private void WriteNamed(object? value, string name)
    {
        try
        {
            WriteValue(value);
        }
        catch (PicklePathException ex) when (ex.Prepend(PathSegment.Named(name)))
        {
            throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
        }
    }

    // ------------------------------------------------------------------------------------------
    // Containers
    // ------------------------------------------------------------------------------------------

    private void Enter()
    {
        if (++_depth > _maxDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack())
        {
            throw new PicklePathException(
                $"the value is nested more than {_maxDepth} levels deep; it probably contains a reference cycle (a container that contains itself), which cannot be pickled without a memo");
        }
    }

    internal void WriteTuple(ReadOnlySpan<object?> items)
    {
        Enter();
        var i = 0;
        try
        {
            switch (items.Length)
            {
                case 0:
                    _out.WriteByte(PickleOpcodes.EmptyTuple);
                    break;
                case <= 3:
                    for (; i < items.Length; i++)
                    {
                        WriteValue(items[i]);
                    }

                    _out.WriteByte((byte)(PickleOpcodes.Tuple1 + items.Length - 1));
                    break;
                default:
                    _out.WriteByte(PickleOpcodes.Mark);
                    for (; i < items.Length; i++)
                    {
                        WriteValue(items[i]);
                    }

                    _out.WriteByte(PickleOpcodes.Tuple);
                    break;
            }
        }
        catch (PicklePathException ex) when (ex.Prepend(PathSegment.Element(i)))
        {
            throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
        }

        _depth--;
    }

    private void WriteITuple(ITuple tuple)
    {
        var items = new object?[tuple.Length];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = tuple[i];
        }

        WriteTuple(items);
    }

    private void WriteCollection(object value)
    {
        var writer = CollectionWriters.GetOrAdd(value.GetType(), CreateCollectionWriter);
        if (writer is null)
        {
            throw new PicklePathException($"type {TypeNames.Format(value.GetType())} cannot be pickled; supported types: {SupportedTypes}");
        }

        writer(this, value);
    }

    private static Action<PickleWriter, object>? CreateCollectionWriter(Type type)
    {
        var interfaces = type.GetInterfaces();
        foreach (var candidate in interfaces)
        {
            if (candidate.IsGenericType
                && (candidate.GetGenericTypeDefinition() == typeof(IDictionary<,>) || candidate.GetGenericTypeDefinition() == typeof(IReadOnlyDictionary<,>)))
            {
                return Bind(nameof(WriteDictObject), candidate.GetGenericArguments());
            }
        }

        if (typeof(IDictionary).IsAssignableFrom(type))
        {
            return static (w, o) => w.WriteNonGenericDict((IDictionary)o);
        }

        foreach (var candidate in interfaces)
        {
            if (candidate.IsGenericType
                && (candidate.GetGenericTypeDefinition() == typeof(ISet<>) || candidate.GetGenericTypeDefinition() == typeof(IReadOnlySet<>)))
            {
                return Bind(nameof(WriteSetObject), candidate.GetGenericArguments());
            }
        }

        foreach (var candidate in interfaces)
        {
            if (candidate.IsGenericType && candidate.GetGenericTypeDefinition() == typeof(IEnumerable<>))
            {
                return Bind(nameof(WriteListObject), candidate.GetGenericArguments());
            }
        }

        if (typeof(IEnumerable).IsAssignableFrom(type))
        {
            return static (w, o) => w.WriteNonGenericList((IEnumerable)o);
        }

        return null;
    }

    private static Action<PickleWriter, object> Bind(string method, Type[] typeArguments) =>
        typeof(PickleWriter).GetMethod(method, BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeArguments)
            .CreateDelegate<Action<PickleWriter, object>>();

    private static void WriteListObject<T>(PickleWriter writer, object value) => writer.WriteList((IEnumerable<T>)value);

    private static void WriteSetObject<T>(PickleWriter writer, object value) => writer.WriteSet((IEnumerable<T>)value);

    private static void WriteDictObject<TKey, TValue>(PickleWriter writer, object value) =>
        writer.WriteDict((IEnumerable<KeyValuePair<TKey, TValue>>)value);

    private void WriteList<T>(IEnumerable<T> items)
    {
        Enter();
        _out.WriteByte(PickleOpcodes.EmptyList);
        switch (items)
        {
            case T[] array:
                WriteBatches<T>(array, PickleOpcodes.Appends);
                break;
            case List<T> list:
                WriteBatches<T>(CollectionsMarshal.AsSpan(list), PickleOpcodes.Appends);
                break;
            default:
                WriteBatches(items, PickleOpcodes.Appends);
                break;
        }

        _depth--;
    }

    private void WriteSet<T>(IEnumerable<T> items)
    {
        Enter();
        _out.WriteByte(PickleOpcodes.EmptySet);
        WriteBatches(items, PickleOpcodes.AddItems);
        _depth--;
    }

    /// <summary>MARK, up to 1000 items, APPENDS (or ADDITEMS), repeated; nothing for no items.</summary>
    private void WriteBatches<T>(ReadOnlySpan<T> items, byte closer)
    {
        var i = 0;
        try
        {
            for (; i < items.Length; i++)
            {
                if (i % BatchSize == 0)
                {
                    if (i > 0)
                    {
                        _out.WriteByte(closer);
                    }

                    _out.WriteByte(PickleOpcodes.Mark);
                }

                Write(items[i]);
            }
        }
        catch (PicklePathException ex) when (ex.Prepend(PathSegment.Element(i)))
        {
            throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
        }

        if (items.Length > 0)
        {
            _out.WriteByte(closer);
        }
    }

    private void WriteBatches<T>(IEnumerable<T> items, byte closer)
    {
        var i = 0;
        try
        {
            foreach (var item in items)
            {
                if (i % BatchSize == 0)
                {
                    if (i > 0)
                    {
                        _out.WriteByte(closer);
                    }

                    _out.WriteByte(PickleOpcodes.Mark);
                }

                Write(item);
                i++;
            }
        }
        catch (PicklePathException ex) when (ex.Prepend(PathSegment.Element(i)))
        {
            throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
        }

        if (i > 0)
        {
            _out.WriteByte(closer);
        }
    }

    // Non-generic collections are rare (ArrayList, Hashtable): adapted to the generic writers.
    private void WriteNonGenericList(IEnumerable items) => WriteList(items.Cast<object?>());

    private void WriteDict<TKey, TValue>(IEnumerable<KeyValuePair<TKey, TValue>> dict)
    {
        Enter();
        _out.WriteByte(PickleOpcodes.EmptyDict);
        WriteDictItems(dict);
        _depth--;
    }

    private void WriteNonGenericDict(IDictionary dict) => WriteDict(Entries(dict));

    private static IEnumerable<KeyValuePair<object, object?>> Entries(IDictionary dict)
    {
        var enumerator = dict.GetEnumerator();
        while (enumerator.MoveNext())
        {
            yield return new KeyValuePair<object, object?>(enumerator.Key, enumerator.Value);
        }
    }

    /// <summary>MARK, up to 1000 key/value pairs, SETITEMS, repeated; nothing for no items.</summary>
    private void WriteDictItems<TKey, TValue>(IEnumerable<KeyValuePair<TKey, TValue>> dict)
    {
        var i = 0;
        var inKey = false;
        TKey? key = default;
        try
        {
            foreach (var entry in dict)
            {
                if (i % BatchSize == 0)
                {
                    if (i > 0)
                    {
                        _out.WriteByte(PickleOpcodes.SetItems);
                    }

                    _out.WriteByte(PickleOpcodes.Mark);
                }

                key = entry.Key;
                inKey = true;
                Write(entry.Key);
                inKey = false;
                Write(entry.Value);
                i++;
            }
        }
        catch (PicklePathException ex) when (ex.Prepend(inKey ? PathSegment.KeyAt(i) : PathSegment.Value(key)))
        {
            throw; // not reached: the filter adds the path and declines, so no frame rethrows (deep nesting stays cheap)
        }

        if (i > 0)
        {
            _out.WriteByte(PickleOpcodes.SetItems);
        }
    }
}
