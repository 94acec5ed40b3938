using RayClient.Cli;

namespace RayClient.FunctionalTests;

/// <summary>The <c>rayclient start</c> limit flags parse sizes as users write them, and refuse what is not one.</summary>
public sealed class CliLimitFlagsTests
{
    [Theory]
    [InlineData("1048576", 1L << 20)]
    [InlineData("512K", 512L << 10)]
    [InlineData("512m", 512L << 20)]
    [InlineData("2G", 2L << 30)]
    public void Start_SizeFlag_ParsesBytesAndBinarySuffixes(string text, long expected)
    {
        var parse = CliApp.BuildRootCommand(TextWriter.Null, TextWriter.Null).Parse(["start", "--object-store-memory", text]);

        Assert.Empty(parse.Errors);
        Assert.Equal(expected, parse.GetValue<long?>("--object-store-memory"));
    }

    [Theory]
    [InlineData("12X")]
    [InlineData("0")]
    [InlineData("99999999999G")]
    public void Start_SizeFlag_NotASize_IsAClearParseError(string text)
    {
        var parse = CliApp.BuildRootCommand(TextWriter.Null, TextWriter.Null).Parse(["start", "--max-kv-value-size", text]);

        var error = Assert.Single(parse.Errors);
        Assert.Contains("is not a size", error.Message, StringComparison.Ordinal);
    }
}
