using System.Numerics;
using RayClient.Serialization;
using static RayClient.Tests.Serialization.PickleTestData;

namespace RayClient.Tests.Serialization;

public class PyConvertTests
{
    [Fact]
    public void To_NumbersWithinRange_Convert()
    {
        Assert.Equal(200, PyConvert.To<byte>(200));
        Assert.Equal(-5, PyConvert.To<sbyte>(-5));
        Assert.Equal(long.MaxValue, PyConvert.To<long>(long.MaxValue));
        Assert.Equal(ulong.MaxValue, PyConvert.To<ulong>(BigInteger.Parse("18446744073709551615", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(7L, PyConvert.To<long>(7));
        Assert.Equal(3.0, PyConvert.To<double>(3));
        Assert.Equal(1.5f, PyConvert.To<float>(1.5));
        Assert.Equal(2.5m, PyConvert.To<decimal>(2.5));
        Assert.Equal(1.50m, PyConvert.To<decimal>(1.50m));
        Assert.Equal(BigInteger.Pow(2, 70), PyConvert.To<BigInteger>(BigInteger.Pow(2, 70)));
        Assert.Equal(new BigInteger(5), PyConvert.To<BigInteger>(5));
        Assert.Equal(1, PyConvert.To<int>(true));
        Assert.Equal(42, PyConvert.To<int?>(42));
        Assert.Null(PyConvert.To<int?>(null));
        Assert.Equal(DayOfWeek.Friday, PyConvert.To<DayOfWeek>(5));
        Assert.Equal(new Complex(2, 0), PyConvert.To<Complex>(2));
    }

    [Fact]
    public void To_IntOutOfRange_ThrowsWithValueInMessage()
    {
        var ex = Assert.Throws<RaySerializationException>(() => PyConvert.To<byte>(300));

        Assert.Equal("Cannot convert Python int to System.Byte: the value 300 is out of range", ex.Message);
        Assert.IsType<OverflowException>(ex.InnerException);
        Assert.Throws<RaySerializationException>(() => PyConvert.To<int>(BigInteger.Pow(2, 40)));
        Assert.Throws<RaySerializationException>(() => PyConvert.To<ulong>(-1));
    }

    [Fact]
    public void To_WrongShape_ThrowsCannotConvert()
    {
        var ex = Assert.Throws<RaySerializationException>(() => PyConvert.To<int>(List(1, 2)));

        Assert.StartsWith("Cannot convert Python list to System.Int32: ", ex.Message, StringComparison.Ordinal);
        Assert.Throws<RaySerializationException>(() => PyConvert.To<int>(1.5));
        Assert.Throws<RaySerializationException>(() => PyConvert.To<string>(1));
        Assert.Throws<RaySerializationException>(() => PyConvert.To<bool>(1));
        Assert.Throws<RaySerializationException>(() => PyConvert.To<int>(null));
        Assert.Throws<RaySerializationException>(() => PyConvert.To<byte[]>("text"));
        Assert.Throws<RaySerializationException>(() => PyConvert.To<Dictionary<string, int>>(List()));
    }

    [Fact]
    public void To_NestedElementFails_MessageHasThePath()
    {
        var value = Dict(("a", List(1, 2, "three")));

        var ex = Assert.Throws<RaySerializationException>(() => PyConvert.To<Dictionary<string, List<int>>>(value));

        Assert.Equal(
            "Cannot convert Python dict to System.Collections.Generic.Dictionary<System.String, System.Collections.Generic.List<System.Int32>>: " +
            "[\"a\"] → element 2: Python str cannot be converted to System.Int32: expected a Python int or float",
            ex.Message);
    }

    [Fact]
    public void To_Collections_ConvertElementByElement()
    {
        Assert.Equal([1, 2, 3], PyConvert.To<int[]>(List(1, 2, 3))!);
        Assert.Equal([1L, 2L], PyConvert.To<List<long>>(new PyTuple(1, 2)));
        Assert.Equal(["a"], PyConvert.To<IReadOnlyList<string>>(List("a")));
        Assert.Equal(["a"], PyConvert.To<IList<string>>(List("a")));
        Assert.Equal([1.5, 2.0], PyConvert.To<IEnumerable<double>>(List(1.5, 2)));
        Assert.Equal(new HashSet<int> { 1, 2 }, PyConvert.To<HashSet<int>>(Set(1, 2)));
        Assert.Equal(new HashSet<string> { "x" }, PyConvert.To<ISet<string>>(Set("x")));
        Assert.Equal([1L, 2L], PyConvert.To<long[]>(new[] { 1, 2 })!); // an array.array('i')
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, PyConvert.To<Dictionary<string, int>>(Dict(("a", 1))));
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, PyConvert.To<IReadOnlyDictionary<string, int>>(Dict(("a", 1))));
        Assert.Equal(new Dictionary<long, string> { [1] = "x" }, PyConvert.To<IDictionary<long, string>>(Dict((1, "x"))));
        var bytesKeyed = PyConvert.To<Dictionary<byte[], int>>(Dict(("k"u8.ToArray(), 1)))!;
        Assert.Equal(1, bytesKeyed["k"u8.ToArray()]);
        Assert.Equal([[1, 2], [3]], PyConvert.To<List<List<int>>>(List(List(1, 2), List(3))));
    }

    [Fact]
    public void To_Tuples_MatchArity()
    {
        Assert.Equal((1, "a", 2.5), PyConvert.To<(int, string, double)>(new PyTuple(1, "a", 2.5)));
        Assert.Equal(Tuple.Create(1L, "b"), PyConvert.To<Tuple<long, string>>(new PyTuple(1, "b")));
        Assert.Equal((1, 2, 3, 4, 5, 6, 7, 8, 9), PyConvert.To<(int, int, int, int, int, int, int, int, int)>(new PyTuple(1, 2, 3, 4, 5, 6, 7, 8, 9)));
        Assert.Equal(new KeyValuePair<string, int>("k", 1), PyConvert.To<KeyValuePair<string, int>>(new PyTuple("k", 1)));
        Assert.Equal(new PyTuple(1, 2), PyConvert.To<PyTuple>(List(1, 2)));

        var ex = Assert.Throws<RaySerializationException>(() => PyConvert.To<(int, int)>(new PyTuple(1, 2, 3)));
        Assert.Contains("expected a tuple of 2 items, got 3", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void To_ObjectAndSameType_ReturnsTheValueItself()
    {
        var list = List(1);
        var obj = new PyObject(new PyGlobal("m", "C"), PyTuple.Empty, true);

        Assert.Same(list, PyConvert.To<object>(list));
        Assert.Same(list, PyConvert.To<List<object?>>(list));
        Assert.Same(obj, PyConvert.To<PyObject>(obj));
        Assert.Null(PyConvert.To<string>(null));
        Assert.Equal("s", PyConvert.To<string>("s"));
        Assert.Equal('c', PyConvert.To<char>("c"));
        Assert.Equal([1, 2], PyConvert.To<byte[]>(new byte[] { 1, 2 })!);
        Assert.Equal([1, 2], PyConvert.To<ReadOnlyMemory<byte>>(new byte[] { 1, 2 }).ToArray());
        Assert.Equal([1, 2], PyConvert.To<Memory<byte>>(new byte[] { 1, 2 }).ToArray());
    }

    [Fact]
    public void To_DatesAndUuid_Convert()
    {
        var offset = new DateTimeOffset(2024, 1, 2, 3, 0, 0, TimeSpan.FromHours(2));

        Assert.Equal(new DateTime(2024, 1, 2, 1, 0, 0, DateTimeKind.Utc), PyConvert.To<DateTime>(offset));
        Assert.Equal(new DateTimeOffset(2024, 1, 2, 0, 0, 0, TimeSpan.Zero), PyConvert.To<DateTimeOffset>(new DateTime(2024, 1, 2)));

        var uuid = new PyObject(new PyGlobal("uuid", "UUID"), PyTuple.Empty, true)
        {
            State = Dict(("int", BigInteger.Parse("0123456789abcdef0123456789abcdef", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture))),
        };
        Assert.Equal(Guid.Parse("01234567-89ab-cdef-0123-456789abcdef"), PyConvert.To<Guid>(uuid));
    }

    [Fact]
    public void To_PythonUuid_FromPython3Pickle()
    {
        var pickles = PickleReaderTests.PicklesFromPython([("Uuid", "uuid.UUID('12345678-1234-5678-1234-567812345678')", [2, 5])], "dumps");

        foreach (var data in pickles["Uuid"].Values)
        {
            Assert.Equal(Guid.Parse("12345678-1234-5678-1234-567812345678"), PyConvert.To<Guid>(PickleReader.Read(data)));
        }
    }
}
