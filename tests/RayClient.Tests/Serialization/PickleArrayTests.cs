using System.Globalization;
using System.Text.Json;
using RayClient.Serialization;

namespace RayClient.Tests.Serialization;

/// <summary>
/// <c>array.array</c> pickles made by python3, in both shapes CPython writes: <c>array.array(typecode,
/// list)</c> (protocols 0–2) and <c>array._array_reconstructor(cls, typecode, mformat_code, bytes)</c>
/// (protocol 3+, every machine format code of CPython's Modules/arraymodule.c). Expected values are
/// what python3 itself makes of the same pickle or call.
/// </summary>
public class PickleArrayTests
{
    /// <summary>The .NET array type of each Python typecode (the README's value mapping).</summary>
    private static readonly Dictionary<string, Type> ElementTypes = new()
    {
        ["b"] = typeof(sbyte),
        ["B"] = typeof(byte),
        ["u"] = typeof(char),
        ["h"] = typeof(short),
        ["H"] = typeof(ushort),
        ["i"] = typeof(int),
        ["I"] = typeof(uint),
        ["l"] = typeof(long),
        ["L"] = typeof(ulong),
        ["q"] = typeof(long),
        ["Q"] = typeof(ulong),
        ["f"] = typeof(float),
        ["d"] = typeof(double),
    };

    private const string Items = """
        def items(a):
            # Python's own view of an array: its typecode and each item as text (floats as their
            # IEEE double bits, exact for NaN and -0.0; 'u' as the whole string).
            if a.typecode == 'u':
                return a.typecode, [''.join(a.tolist())]
            if a.typecode in 'fd':
                return a.typecode, [struct.pack('<d', v).hex() for v in a.tolist()]
            return a.typecode, [str(v) for v in a.tolist()]

        import struct
        """;

    [Fact]
    public void Read_ArrayEveryTypecodeAndProtocol_GivesPythonsItems()
    {
        var output = PythonRunner.Run(Items + """

            F32_MAX, F32_MIN = 3.4028234663852886e38, 1.401298464324817e-45
            cases = {
                'b': [-128, -1, 0, 127], 'B': [0, 1, 255], 'u': 'aé日😀𝄞',
                'h': [-32768, -1, 32767], 'H': [0, 65535],
                'i': [-2**31, -1, 2**31 - 1], 'I': [0, 2**32 - 1],
                'l': [-2**63, -1, 2**63 - 1], 'L': [0, 2**63, 2**64 - 1],
                'q': [-2**63, 2**40, 2**63 - 1], 'Q': [0, 2**63, 2**64 - 1],
                'f': [1.5, -0.0, float('inf'), float('-inf'), float('nan'), F32_MAX, F32_MIN],
                'd': [1.5, -0.0, float('inf'), float('nan'), 1e308, 5e-324],
            }
            result = []
            for tc, values in cases.items():
                for value in (values, values[:0]):
                    a = array.array(tc, value)
                    typecode, expected = items(a)
                    result.append({'typecode': tc, 'expected_typecode': typecode, 'expected': expected,
                                   'pickles': [dumps(a, p).hex() for p in range(6)]})
            print(json.dumps(result))
            """);

        var failures = new List<string>();
        foreach (var c in JsonSerializer.Deserialize<JsonElement>(output).EnumerateArray())
        {
            var typecode = c.GetProperty("typecode").GetString()!;
            var expectedTypecode = c.GetProperty("expected_typecode").GetString()!;
            var expected = c.GetProperty("expected").EnumerateArray().Select(e => e.GetString()!).ToList();
            var protocol = 0;
            foreach (var pickle in c.GetProperty("pickles").EnumerateArray())
            {
                var where = $"array('{typecode}', {expected.Count} items)/p{protocol++}";
                Check(where, expectedTypecode, expected, PickleReader.Read(Convert.FromHexString(pickle.GetString()!)), failures);
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public void Read_ArrayReconstructorEveryMachineFormat_GivesWhatPythonMakesOfIt()
    {
        // Every typecode with every machine format code (0-21), as a pickle from another machine
        // would carry them: CPython re-picks an integer typecode by the format's size and sign,
        // converts floats to the typecode's width, decodes UTF-16/32 for 'u', and refuses the rest.
        var output = PythonRunner.Run(Items + """

            TEXT = 'aé日😀𝄞'
            def data_for(code):
                if code <= 13:
                    size = {0: 1, 1: 1}.get(code, 2 ** ((code - 2) // 4 + 1))
                    signed = code == 1 or (code >= 2 and (code - 2) // 2 % 2 == 1)
                    fmt = ('>' if code >= 2 and code % 2 == 1 else '<') + {1: 'b', 2: 'h', 4: 'i', 8: 'q'}[size]
                    fmt = fmt if signed else fmt.upper()
                    lo, hi = (-2 ** (size * 8 - 1), 2 ** (size * 8 - 1) - 1) if signed else (0, 2 ** (size * 8) - 1)
                    return b''.join(struct.pack(fmt, v) for v in (lo, hi, 1, lo + 1, hi // 3))
                if code <= 17:
                    fmt = ('>' if code % 2 else '<') + ('f' if code <= 15 else 'd')
                    return b''.join(struct.pack(fmt, v) for v in (1.5, -0.0, float('inf'), float('nan'), -3.25e-3))
                return TEXT.encode({18: 'utf-16-le', 19: 'utf-16-be', 20: 'utf-32-le', 21: 'utf-32-be'}[code])

            class Reconstructed:
                def __init__(self, typecode, code, data):
                    self.args = (array.array, typecode, code, data)
                def __reduce__(self):
                    return (array._array_reconstructor, self.args)

            cases = [(tc, code, data_for(code)) for tc in 'bBuhHiIlLqQfd' for code in range(22)]
            # Data whose length is not a multiple of the item size, and codes CPython does not know.
            cases += [('i', 8, b'\x01\x02\x03'), ('d', 16, b'\x00' * 7), ('u', 20, b'a\x00\x00'), ('i', 22, b'\x01\x00\x00\x00'), ('i', -1, b'\x01\x00\x00\x00')]
            result = []
            for tc, code, data in cases:
                if code >= 18 and tc == 'u' and len(data) % (2 if code <= 19 else 4) == 0:
                    # CPython 3.11 checks text from another machine (UTF-16, or big-endian UTF-32 on
                    # Linux) against twice its code unit size and refuses most of it ("string length
                    # not a multiple of item size"): the text is what it means.
                    typecode, expected = 'u', [data.decode(['utf-16-le', 'utf-16-be', 'utf-32-le', 'utf-32-be'][code - 18])]
                else:
                    try:
                        typecode, expected = items(array._array_reconstructor(array.array, tc, code, data))
                    except (TypeError, ValueError) as e:
                        typecode, expected = None, None
                result.append({'typecode': tc, 'code': code, 'expected_typecode': typecode, 'expected': expected,
                               'pickles': [dumps(Reconstructed(tc, code, data), p).hex() for p in (3, 5)]})
            print(json.dumps(result))
            """);

        var failures = new List<string>();
        var count = 0;
        foreach (var c in JsonSerializer.Deserialize<JsonElement>(output).EnumerateArray())
        {
            var where = $"_array_reconstructor('{c.GetProperty("typecode").GetString()}', {c.GetProperty("code").GetInt32()})";
            foreach (var pickle in c.GetProperty("pickles").EnumerateArray())
            {
                count++;
                var value = PickleReader.Read(Convert.FromHexString(pickle.GetString()!));
                if (c.GetProperty("expected_typecode").ValueKind == JsonValueKind.Null)
                {
                    // CPython refuses it: the call stays data, as any call we do not evaluate.
                    if (value is not PyObject { Callable: PyGlobal { Module: "array", Name: "_array_reconstructor" } })
                    {
                        failures.Add($"{where}: python3 refuses it, got {value?.GetType().Name ?? "null"}");
                    }

                    continue;
                }

                var expected = c.GetProperty("expected").EnumerateArray().Select(e => e.GetString()!).ToList();
                Check(where, c.GetProperty("expected_typecode").GetString()!, expected, value, failures);
            }
        }

        Assert.Equal(13 * 22 * 2 + 10, count);
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    private static void Check(string where, string expectedTypecode, List<string> expected, object? actual, List<string> failures)
    {
        var elementType = ElementTypes[expectedTypecode];
        if (actual is not Array array || actual.GetType() != elementType.MakeArrayType())
        {
            failures.Add($"{where}: expected {elementType.Name}[] (Python '{expectedTypecode}'), got {actual?.GetType().Name ?? "null"}");
            return;
        }

        if (actual is char[] chars)
        {
            if (new string(chars) != expected[0])
            {
                failures.Add($"{where}: expected '{expected[0]}', got '{new string(chars)}'");
            }

            return;
        }

        var got = new List<string>();
        foreach (var item in array)
        {
            got.Add(item switch
            {
                float f => Convert.ToHexStringLower(BitConverter.GetBytes((double)f)),
                double d => Convert.ToHexStringLower(BitConverter.GetBytes(d)),
                _ => Convert.ToString(item, CultureInfo.InvariantCulture)!,
            });
        }

        // NaN's payload may differ after a float round trip: compare NaN as NaN.
        static string Normalize(string s) => s.Length == 16 && double.IsNaN(BitConverter.ToDouble(Convert.FromHexString(s))) ? "nan" : s;
        if (!expected.Select(Normalize).SequenceEqual(got.Select(Normalize)))
        {
            failures.Add($"{where}: expected [{string.Join(", ", expected)}], got [{string.Join(", ", got)}]");
        }
    }
}
