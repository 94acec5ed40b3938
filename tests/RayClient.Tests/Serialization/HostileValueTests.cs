using System.Diagnostics;
using System.Numerics;
using RayClient.Serialization;

namespace RayClient.Tests.Serialization;

/// <summary>Odd values a peer can send never make the codec slow or crash it (issue 10 §5).</summary>
public class HostileValueTests
{
    [Fact]
    public void To_HugeIntAsLong_FailsFastWithABoundedMessage()
    {
        // 3,300,000 bits: rendering it in decimal took minutes (quadratic formatting).
        var huge = BigInteger.One << 3_300_000;

        var watch = Stopwatch.StartNew();
        var ex = Assert.Throws<RaySerializationException>(() => PyConvert.To<long>(huge));
        watch.Stop();

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"the conversion took {watch.Elapsed}");
        Assert.True(ex.Message.Length < 300, $"the message is {ex.Message.Length} characters long");
        Assert.Contains("3300001 bits", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void To_HugeIntInsideAList_MessageStaysBounded()
    {
        var huge = -(BigInteger.One << 1_000_000) + 12345;

        var watch = Stopwatch.StartNew();
        var ex = Assert.Throws<RaySerializationException>(() => PyConvert.To<List<int>>(new List<object?> { 1, huge }));
        watch.Stop();

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"the conversion took {watch.Elapsed}");
        Assert.True(ex.Message.Length < 300, $"the message is {ex.Message.Length} characters long");
    }

    [Fact]
    public void Format_HugeInt_ShowsBitLengthAndAPrefix()
    {
        var huge = BigInteger.Parse("1234567890abcdef", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) << 100_000;

        var text = PyRepr.Format(huge);

        Assert.StartsWith("<int of 100061 bits: 0x1234567890abcdef", text, StringComparison.Ordinal);
        Assert.True(text.Length < 100, text);
        // Ordinary ints stay Python's repr.
        Assert.Equal("-123456789012345678901234567890", PyRepr.Format(BigInteger.Parse("-123456789012345678901234567890", System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Read_LongTextBeyondPythonsDigitLimit_ThrowsQuickly()
    {
        // Protocol 0 LONG with 2,000,000 digits: Python refuses more than 4300 digits
        // (sys.int_info.default_max_str_digits); parsing them would be quadratic.
        var digits = new string('9', 2_000_000);
        var pickle = System.Text.Encoding.ASCII.GetBytes("L" + digits + "L\n.");

        var watch = Stopwatch.StartNew();
        var ex = Assert.Throws<RaySerializationException>(() => PickleReader.Read(pickle));
        watch.Stop();

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"the read took {watch.Elapsed}");
        Assert.True(ex.Message.Length < 300, ex.Message);
        Assert.Contains("4300", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_InvalidFloatText_MessageShowsAShortPrefix()
    {
        var pickle = System.Text.Encoding.ASCII.GetBytes("F" + new string('x', 100_000) + "\n.");

        var ex = Assert.Throws<RaySerializationException>(() => PickleReader.Read(pickle));

        Assert.True(ex.Message.Length < 300, ex.Message);
    }

    [Fact]
    public void GetHashCodeAndEquals_VeryDeepTuple_ThrowTheLibrarysException()
    {
        var a = Nest(1_000_000);
        var b = Nest(1_000_000);

        var hash = Assert.Throws<RaySerializationException>(() => a.GetHashCode());
        var equals = Assert.Throws<RaySerializationException>(() => a.Equals(b));
        var set = Assert.Throws<RaySerializationException>(() => new HashSet<object?>(PyValueComparer.Instance) { a });

        Assert.Contains("nested", hash.Message, StringComparison.Ordinal);
        Assert.Contains("nested", equals.Message, StringComparison.Ordinal);
        Assert.Contains("nested", set.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GetHashCodeAndEquals_ModeratelyDeepTuple_Work()
    {
        var a = Nest(500);
        var b = Nest(500);

        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.True(a.Equals(b));
        Assert.False(a.Equals(Nest(499)));
    }

    private static PyTuple Nest(int depth)
    {
        var tuple = new PyTuple(1);
        for (var i = 0; i < depth; i++)
        {
            tuple = new PyTuple(tuple, i);
        }

        return tuple;
    }
}
