namespace RayClient.Tests.Session;

public sealed class LogRoutingTests
{
    [Theory]
    [InlineData(-1, "out")]
    [InlineData(-2, "err")]
    [InlineData(-3, "out")]
    [InlineData(30, "err")]
    [InlineData(50, "err")]
    [InlineData(20, null)]
    public void ConsoleWriterFor_Level_GoesWhereRaysLogsClientSendsIt(int level, string? expected)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var writer = RayClient.Session.RayConnection.ConsoleWriterFor(level, stdout, stderr);

        Assert.Same(expected switch { "out" => stdout, "err" => stderr, _ => null }, writer);
    }
}
