using RayClient.Serialization;

namespace RayClient.Tests.Serialization;

public sealed class PickleSerializerTests
{
    [Fact]
    public void Deserialize_CPythonProtocol5Dict_GivesTheValueMapping()
    {
        var value = PickleSerializer.Deserialize(Convert.FromHexString(GoldenPickles.Protocol5Dict));

        var dict = Assert.IsAssignableFrom<IDictionary<object, object?>>(value);
        Assert.Equal("ray", dict["name"]);
        Assert.Equal(new object?[] { 1, 1L << 40 }, PyConvert.To<object?[]>(dict["ids"]));
        Assert.Equal(new PyTuple("a", new byte[] { 0 }), dict["pair"]);
    }

    [Fact]
    public void DeserializeOfT_CPythonDict_ConvertsToTheRequestedType()
    {
        var value = PickleSerializer.Deserialize<Dictionary<string, object?>>(Convert.FromHexString(GoldenPickles.Protocol5Dict));

        Assert.NotNull(value);
        Assert.Equal(["name", "ids", "pair", "tags"], value.Keys);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void Serialize_ThenDeserialize_RoundTrips(int protocol)
    {
        var bytes = PickleSerializer.Serialize(new Dictionary<string, object?> { ["n"] = 3L, ["xs"] = new List<object?> { "a", 1.5, null } }, protocol);

        Assert.Equal(0x80, bytes[0]);
        Assert.Equal(protocol, bytes[1]);
        var back = PickleSerializer.Deserialize<Dictionary<string, object?>>(bytes)!;
        Assert.Equal(3L, PyConvert.To<long>(back["n"]));
        Assert.Equal(new object?[] { "a", 1.5, null }, PyConvert.To<object?[]>(back["xs"]));
    }

    [Fact]
    public void Serialize_UnsupportedProtocol_ThrowsArgumentOutOfRange()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => PickleSerializer.Serialize(1, protocol: 3));

        Assert.Equal("protocol", error.ParamName);
    }

    [Fact]
    public void Deserialize_NotAPickle_ThrowsRaySerializationException()
    {
        Assert.Throws<RaySerializationException>(() => PickleSerializer.Deserialize(new byte[] { 0x80, 0x05, 0xFF, 0x2E }));
    }
}
