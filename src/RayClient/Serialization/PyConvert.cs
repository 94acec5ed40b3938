using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace RayClient.Serialization;

/// <summary>
/// Converts unpickled Python values (as the unpickler returns them: <c>int</c>/<c>long</c>/<see cref="BigInteger"/>,
/// <c>double</c>, <c>string</c>, <c>byte[]</c>, <c>List&lt;object?&gt;</c>, <see cref="PyTuple"/>,
/// <c>Dictionary&lt;object, object?&gt;</c>, <c>HashSet&lt;object?&gt;</c>…) to the .NET type a caller asks for.
/// </summary>
/// <remarks>
/// Numbers convert between all numeric types with overflow checks; Python floats do not convert
/// to integer types. Lists, tuples and sets convert to arrays, <c>List&lt;T&gt;</c>, <c>HashSet&lt;T&gt;</c> and their
/// interfaces; dicts to <c>Dictionary&lt;TKey, TValue&gt;</c> and its interfaces; tuples to value tuples and
/// <c>Tuple&lt;…&gt;</c> of the same length. Elements convert recursively. <c>object</c> returns the value as it is.
/// </remarks>
public static class PyConvert
{
    private const int MaxDepth = 200;

    private static readonly ConcurrentDictionary<Type, Func<object, int, object>> CollectionConverters = new();

    /// <summary>Converts <paramref name="value"/> to <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">The requested type.</typeparam>
    /// <param name="value">An unpickled value.</param>
    /// <exception cref="RaySerializationException">The value has another shape, or a number does not fit.</exception>
    public static T? To<T>(object? value) => (T?)To(value, typeof(T));

    /// <summary>Converts <paramref name="value"/> to <paramref name="type"/>.</summary>
    /// <param name="value">An unpickled value.</param>
    /// <param name="type">The requested type.</param>
    /// <exception cref="RaySerializationException">The value has another shape, or a number does not fit.</exception>
    public static object? To(object? value, Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        try
        {
            return Convert(value, type, 0);
        }
        catch (ConversionException ex)
        {
            var prefix = $"Cannot convert Python {PyTypeName.Of(value)} to {TypeNames.Format(type)}";
            throw new RaySerializationException(ex.Path.Count == 0 ? $"{prefix}: {ex.Message}" : $"{prefix}: {ex.FormatPath()}: {ex.Message}", ex.InnerException);
        }
    }

    private static object? Convert(object? value, Type type, int depth)
    {
        if (type == typeof(object))
        {
            return value;
        }

        if (Nullable.GetUnderlyingType(type) is { } underlying)
        {
            return value is null ? null : Convert(value, underlying, depth);
        }

        if (value is null)
        {
            return type.IsValueType ? throw Fail(value, type, "None has no value of this type") : null;
        }

        if (type.IsInstanceOfType(value))
        {
            return value;
        }

        if (depth > MaxDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack())
        {
            throw Fail(value, type, "the value is nested too deeply (a cycle?)");
        }

        if (type.IsEnum)
        {
            var raw = value is PyObject { Args.Count: 1 } member ? member.Args[0] : value; // a pickled Python enum member
            return Enum.ToObject(type, Convert(raw, Enum.GetUnderlyingType(type), depth + 1)!);
        }

        if (IsNumeric(type))
        {
            return ConvertNumber(value, type);
        }

        switch (Type.GetTypeCode(type))
        {
            case TypeCode.Boolean:
                throw Fail(value, type, "only a Python bool converts to bool");
            case TypeCode.String:
                throw Fail(value, type, "only a Python str converts to string");
            case TypeCode.Char:
                return value is string { Length: 1 } s ? s[0] : throw Fail(value, type, "only a str of length 1 converts to char");
            case TypeCode.DateTime:
                return value switch
                {
                    DateTimeOffset offset => offset.UtcDateTime,
                    DateOnly date => date.ToDateTime(TimeOnly.MinValue),
                    _ => throw Fail(value, type, "expected a datetime.datetime or datetime.date"),
                };
        }

        if (type == typeof(DateTimeOffset))
        {
            return value is DateTime dt
                ? new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Utc)) // a naive datetime is taken as UTC
                : throw Fail(value, type, "expected a datetime.datetime");
        }

        if (type == typeof(ReadOnlyMemory<byte>) || type == typeof(Memory<byte>))
        {
            if (value is byte[] bytes)
            {
                return type == typeof(Memory<byte>) ? (object)new Memory<byte>(bytes) : (object)new ReadOnlyMemory<byte>(bytes);
            }

            throw Fail(value, type, "expected Python bytes");
        }

        if (type == typeof(Guid))
        {
            return ToGuid(value) ?? throw Fail(value, type, "expected a uuid.UUID");
        }

        if (type == typeof(PyTuple))
        {
            return value switch
            {
                List<object?> list => PyTuple.From(list),
                HashSet<object?> set => PyTuple.From(set),
                _ => throw Fail(value, type, "expected a Python tuple or list"),
            };
        }

        if (type == typeof(byte[]))
        {
            throw Fail(value, type, "expected Python bytes or bytearray");
        }

        if (typeof(ITuple).IsAssignableFrom(type) && type.IsGenericType)
        {
            return ConvertTuple(value, type, depth);
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(KeyValuePair<,>))
        {
            var args = type.GetGenericArguments();
            var pair = AsItems(value, type) is { Count: 2 } items ? items : throw Fail(value, type, "expected a tuple of 2 items");
            return Activator.CreateInstance(type, Element(pair[0], args[0], depth, 0), Element(pair[1], args[1], depth, 1));
        }

        var converter = CollectionConverters.GetOrAdd(type, CreateCollectionConverter);
        return converter(value, depth);
    }

    // ------------------------------------------------------------------------------------------
    // Numbers
    // ------------------------------------------------------------------------------------------

    private static bool IsNumeric(Type type) =>
        Type.GetTypeCode(type) is TypeCode.SByte or TypeCode.Byte or TypeCode.Int16 or TypeCode.UInt16 or TypeCode.Int32 or TypeCode.UInt32
            or TypeCode.Int64 or TypeCode.UInt64 or TypeCode.Single or TypeCode.Double or TypeCode.Decimal
        || type == typeof(BigInteger) || type == typeof(Half) || type == typeof(Int128) || type == typeof(UInt128)
        || type == typeof(nint) || type == typeof(nuint) || type == typeof(Complex);

    private static object ConvertNumber(object value, Type type)
    {
        var isFloatTarget = type == typeof(double) || type == typeof(float) || type == typeof(Half) || type == typeof(decimal) || type == typeof(Complex);
        BigInteger integer;
        switch (value)
        {
            case int i:
                integer = i;
                break;
            case long l:
                integer = l;
                break;
            case BigInteger b:
                integer = b;
                break;
            case bool flag:
                integer = flag ? BigInteger.One : BigInteger.Zero; // Python's bool is an int
                break;
            case byte or sbyte or short or ushort or uint or ulong:
                integer = new BigInteger(System.Convert.ToDecimal(value, CultureInfo.InvariantCulture));
                break;
            case double or float or decimal when isFloatTarget:
                return ConvertFloat(value, type);
            case double or float:
                throw Fail(value, type, "a Python float does not convert to an integer type (convert it in Python, or ask for double)");
            default:
                throw Fail(value, type, "expected a Python int or float");
        }

        try
        {
            return Type.GetTypeCode(type) switch
            {
                TypeCode.SByte => (object)(sbyte)integer,
                TypeCode.Byte => (object)(byte)integer,
                TypeCode.Int16 => (object)(short)integer,
                TypeCode.UInt16 => (object)(ushort)integer,
                TypeCode.Int32 => (object)(int)integer,
                TypeCode.UInt32 => (object)(uint)integer,
                TypeCode.Int64 => (object)(long)integer,
                TypeCode.UInt64 => (object)(ulong)integer,
                TypeCode.Single => (object)(float)integer,
                TypeCode.Double => (object)(double)integer,
                TypeCode.Decimal => (object)(decimal)integer,
                _ when type == typeof(BigInteger) => (object)integer,
                _ when type == typeof(Int128) => (object)(Int128)integer,
                _ when type == typeof(UInt128) => (object)(UInt128)integer,
                _ when type == typeof(nint) => (object)(nint)(long)integer,
                _ when type == typeof(nuint) => (object)(nuint)(ulong)integer,
                _ when type == typeof(Half) => (object)(Half)(double)integer,
                _ when type == typeof(Complex) => (object)new Complex((double)integer, 0),
                _ => throw Fail(value, type, "unsupported numeric type"),
            };
        }
        catch (OverflowException ex)
        {
            throw Fail(value, type, $"the value {PyRepr.Format(integer)} is out of range", ex);
        }
    }

    private static object ConvertFloat(object value, Type type)
    {
        try
        {
            if (value is decimal m)
            {
                return type == typeof(decimal) ? m
                    : type == typeof(float) ? (object)(float)m
                    : type == typeof(Half) ? (object)(Half)(double)m
                    : type == typeof(Complex) ? (object)new Complex((double)m, 0)
                    : (object)(double)m;
            }

            var d = System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
            return type == typeof(decimal) ? (object)(decimal)d
                : type == typeof(float) ? (object)(float)d
                : type == typeof(Half) ? (object)(Half)d
                : type == typeof(Complex) ? (object)new Complex(d, 0)
                : (object)d;
        }
        catch (OverflowException ex)
        {
            throw Fail(value, type, $"the value {PyRepr.Format(value)} is out of range", ex);
        }
    }

    private static Guid? ToGuid(object value)
    {
        // uuid.UUID pickles as NEWOBJ(UUID) + BUILD({'int': <128-bit int>, 'is_safe': …}).
        if (value is PyObject { Class: { Module: "uuid", Name: "UUID" }, State: Dictionary<object, object?> state }
            && state.TryGetValue("int", out var raw) && raw is BigInteger or long or int)
        {
            var integer = raw is BigInteger b ? b : new BigInteger(System.Convert.ToInt64(raw, CultureInfo.InvariantCulture));
            Span<byte> bytes = stackalloc byte[16];
            if (integer.Sign >= 0 && integer.GetByteCount(isUnsigned: true) <= 16)
            {
                var n = integer.GetByteCount(isUnsigned: true);
                integer.TryWriteBytes(bytes[(16 - n)..], out _, isUnsigned: true, isBigEndian: true);
                return new Guid(bytes, bigEndian: true);
            }
        }

        return value is string text && Guid.TryParse(text, out var parsed) ? parsed : null;
    }

    // ------------------------------------------------------------------------------------------
    // Tuples and collections
    // ------------------------------------------------------------------------------------------

    private static IReadOnlyList<object?>? AsItems(object value, Type type) => value switch
    {
        PyTuple tuple => tuple,
        List<object?> list => list,
        _ => null,
    };

    private static object ConvertTuple(object value, Type type, int depth)
    {
        var arguments = type.GetGenericArguments();
        var items = AsItems(value, type) ?? throw Fail(value, type, $"expected a tuple of {Arity(type)} items");
        var arity = Arity(type);
        if (items.Count != arity)
        {
            throw Fail(value, type, $"expected a tuple of {arity} items, got {items.Count}");
        }

        var values = new object?[arguments.Length];
        for (var i = 0; i < arguments.Length; i++)
        {
            if (i == 7)
            {
                // TRest: the remaining items form a nested tuple of the same kind.
                var rest = PyTuple.Own([.. items.Skip(7)]);
                values[i] = ConvertTuple(rest, arguments[i], depth + 1);
            }
            else
            {
                values[i] = Element(items[i], arguments[i], depth, i);
            }
        }

        return Activator.CreateInstance(type, values)!;
    }

    private static int Arity(Type tupleType)
    {
        var arguments = tupleType.GetGenericArguments();
        return arguments.Length == 8 ? 7 + Arity(arguments[7]) : arguments.Length;
    }

    private static object? Element(object? item, Type type, int depth, int index)
    {
        try
        {
            return Convert(item, type, depth + 1);
        }
        catch (ConversionException ex) when (ex.AddPath($"element {index}"))
        {
            throw; // not reached: the filter records the path and declines
        }
    }

    private static Func<object, int, object> CreateCollectionConverter(Type type)
    {
        if (type.IsArray && type.GetArrayRank() == 1)
        {
            return Bind(nameof(ToArray), type.GetElementType()!);
        }

        if (type.IsGenericType)
        {
            var definition = type.GetGenericTypeDefinition();
            var arguments = type.GetGenericArguments();
            if (definition == typeof(List<>) || definition == typeof(IList<>) || definition == typeof(ICollection<>)
                || definition == typeof(IEnumerable<>) || definition == typeof(IReadOnlyList<>) || definition == typeof(IReadOnlyCollection<>))
            {
                return Bind(nameof(ToList), arguments);
            }

            if (definition == typeof(HashSet<>) || definition == typeof(ISet<>) || definition == typeof(IReadOnlySet<>))
            {
                return Bind(nameof(ToSet), arguments);
            }

            if (definition == typeof(Dictionary<,>) || definition == typeof(IDictionary<,>) || definition == typeof(IReadOnlyDictionary<,>))
            {
                return Bind(nameof(ToDictionary), arguments);
            }
        }

        return (value, _) => throw Fail(value, type, "there is no conversion to this type");
    }

    private static Func<object, int, object> Bind(string method, params Type[] typeArguments) =>
        typeof(PyConvert).GetMethod(method, BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeArguments)
            .CreateDelegate<Func<object, int, object>>();

    private static IEnumerable Sequence(object value, Type type) => value switch
    {
        List<object?> or PyTuple or HashSet<object?> => (IEnumerable)value,
        Array array when value is not byte[] => array, // array.array values
        PyObject { ListItems: { } items } => items,
        _ => throw Fail(value, type, "expected a Python list, tuple or set"),
    };

    private static object ToArray<T>(object value, int depth)
    {
        var source = Sequence(value, typeof(T[]));
        var result = new List<T>(source is ICollection c ? c.Count : 4);
        var i = 0;
        foreach (var item in source)
        {
            result.Add((T)Element(item, typeof(T), depth, i++)!);
        }

        return result.ToArray();
    }

    private static object ToList<T>(object value, int depth)
    {
        var source = Sequence(value, typeof(List<T>));
        var result = new List<T>(source is ICollection c ? c.Count : 4);
        var i = 0;
        foreach (var item in source)
        {
            result.Add((T)Element(item, typeof(T), depth, i++)!);
        }

        return result;
    }

    private static object ToSet<T>(object value, int depth)
    {
        var source = Sequence(value, typeof(HashSet<T>));
        var result = typeof(T) == typeof(byte[]) ? new HashSet<T>((IEqualityComparer<T>)(object)PyValueComparer.Instance) : new HashSet<T>();
        var i = 0;
        foreach (var item in source)
        {
            result.Add((T)Element(item, typeof(T), depth, i++)!);
        }

        return result;
    }

    private static object ToDictionary<TKey, TValue>(object value, int depth)
        where TKey : notnull
    {
        var source = value switch
        {
            Dictionary<object, object?> dict => dict,
            PyObject { DictItems: Dictionary<object, object?> items } => items, // a dict subclass
            _ => throw Fail(value, typeof(Dictionary<TKey, TValue>), "expected a Python dict"),
        };

        var result = typeof(TKey) == typeof(byte[]) || typeof(TKey) == typeof(PyTuple)
            ? new Dictionary<TKey, TValue>(source.Count, (IEqualityComparer<TKey>)(object)PyValueComparer.Instance)
            : new Dictionary<TKey, TValue>(source.Count);
        foreach (var (rawKey, rawValue) in source)
        {
            TKey key;
            try
            {
                key = (TKey)Convert(rawKey, typeof(TKey), depth + 1)!;
            }
            catch (ConversionException ex) when (ex.AddPath($"key {PicklePathException.FormatKey(rawKey)}"))
            {
                throw; // not reached: the filter records the path and declines
            }

            try
            {
                result[key] = (TValue)Convert(rawValue, typeof(TValue), depth + 1)!;
            }
            catch (ConversionException ex) when (ex.AddPath($"[{PicklePathException.FormatKey(rawKey)}]"))
            {
                throw; // not reached: the filter records the path and declines
            }
        }

        return result;
    }

    private static ConversionException Fail(object? value, Type type, string reason, Exception? inner = null) =>
        new(value, type, reason, inner);

    /// <summary>A failed conversion somewhere inside the value; the path is collected while unwinding.</summary>
    private sealed class ConversionException : Exception
    {
        public ConversionException(object? value, Type type, string reason, Exception? inner)
            : base(reason, inner)
        {
            LeafType = PyTypeName.Of(value);
            Target = type;
        }

        public List<string> Path { get; } = [];

        /// <summary>Records a path step from an exception filter; false lets the exception unwind in one pass.</summary>
        public bool AddPath(string step)
        {
            Path.Add(step);
            return false;
        }

        private string LeafType { get; }

        private Type Target { get; }

        public string FormatPath()
        {
            Path.Reverse();
            return $"{string.Join(" → ", Path)}: Python {LeafType} cannot be converted to {TypeNames.Format(Target)}";
        }
    }
}
