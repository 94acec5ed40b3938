using System.Collections;
using System.Numerics;
using RayClient.Serialization;

namespace RayClient.Tests.Serialization;

/// <summary>Shared test helpers: deterministic payloads and a strict deep comparison of unpickled values.</summary>
internal static class PickleTestData
{
    /// <summary>The same bytes as <c>pattern(n)</c> in <see cref="PythonHarness"/>.</summary>
    public static byte[] Pattern(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(((i * 7) + 3) % 256);
        }

        return bytes;
    }

    /// <summary>Asserts that two unpickled values are equal, including their .NET types (int vs long matters).</summary>
    public static void AssertDeepEqual(object? expected, object? actual, string path = "value")
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {Describe(expected)}, got {Describe(actual)}");
            return;
        }

        Assert.True(expected.GetType() == actual.GetType(), $"{path}: expected {Describe(expected)}, got {Describe(actual)}");
        switch (expected)
        {
            case double d:
                var a = (double)actual;
                Assert.True(
                    (double.IsNaN(d) && double.IsNaN(a)) || BitConverter.DoubleToInt64Bits(d) == BitConverter.DoubleToInt64Bits(a),
                    $"{path}: expected {d:R}, got {a:R}");
                break;
            case byte[] bytes:
                Assert.True(bytes.AsSpan().SequenceEqual((byte[])actual), $"{path}: bytes differ (lengths {bytes.Length} and {((byte[])actual).Length})");
                break;
            case PyTuple tuple:
                AssertItems(tuple, (PyTuple)actual, path);
                break;
            case List<object?> list:
                AssertItems(list, (List<object?>)actual, path);
                break;
            case Dictionary<object, object?> dict:
                var other = (Dictionary<object, object?>)actual;
                Assert.True(dict.Count == other.Count, $"{path}: expected {dict.Count} entries, got {other.Count}");
                foreach (var (key, value) in dict)
                {
                    Assert.True(other.TryGetValue(key, out var otherValue), $"{path}: key {PyRepr.Format(key)} is missing");
                    AssertDeepEqual(value, otherValue, $"{path}[{PyRepr.Format(key)}]");
                }

                break;
            case HashSet<object?> set:
                Assert.True(set.SetEquals((HashSet<object?>)actual), $"{path}: expected {PyRepr.Format(set)}, got {PyRepr.Format(actual)}");
                break;
            case PyObject obj:
                var actualObj = (PyObject)actual;
                AssertDeepEqual(obj.Callable, actualObj.Callable, path + ".Callable");
                AssertDeepEqual(obj.Args, actualObj.Args, path + ".Args");
                AssertDeepEqual(obj.State, actualObj.State, path + ".State");
                break;
            case Array array when expected is not byte[]:
                AssertItems(array, (Array)actual, path);
                break;
            default:
                Assert.True(expected.Equals(actual), $"{path}: expected {Describe(expected)}, got {Describe(actual)}");
                break;
        }
    }

    private static void AssertItems(IEnumerable expected, IEnumerable actual, string path)
    {
        var e = expected.Cast<object?>().ToList();
        var a = actual.Cast<object?>().ToList();
        Assert.True(e.Count == a.Count, $"{path}: expected {e.Count} items, got {a.Count}");
        for (var i = 0; i < e.Count; i++)
        {
            AssertDeepEqual(e[i], a[i], $"{path}[{i}]");
        }
    }

    private static string Describe(object? value) =>
        value is null ? "null" : $"{PyRepr.Format(value, 200)} ({value.GetType().Name})";

    public static Dictionary<object, object?> Dict(params (object Key, object? Value)[] entries)
    {
        var dict = new Dictionary<object, object?>(PyValueComparer.Instance);
        foreach (var (key, value) in entries)
        {
            dict[key] = value;
        }

        return dict;
    }

    public static HashSet<object?> Set(params object?[] items) => new(items, PyValueComparer.Instance);

    public static List<object?> List(params object?[] items) => [.. items];

    public static BigInteger Big(string digits) => BigInteger.Parse(digits, System.Globalization.CultureInfo.InvariantCulture);
}
