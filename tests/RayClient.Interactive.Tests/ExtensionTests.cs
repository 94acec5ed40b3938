using RayClient.Interactive.Tests.Infrastructure;

namespace RayClient.Interactive.Tests;

[Collection(PackedFeedCollection.Name)]
public sealed class ExtensionTests(PackedFeed feed)
{
    [Fact]
    public async Task NugetReference_LoadsExtension_ConnectStartsEmbeddedServerAndDefinesRay()
    {
        using var kernel = new NotebookKernel();
        await kernel.RunOkAsync($"#i \"nuget: {feed.Feed}\"");
        var load = await kernel.RunOkAsync($"#r \"nuget: RayClient.Interactive, {feed.Version}\"");
        Assert.Contains("RayClient.Interactive", kernel.LoadedExtensions);

        var connect = await kernel.RunOkAsync("#!ray connect");
        Assert.True(connect.PlainText.Contains("Started the embedded Ray server at ray://127.0.0.1:", StringComparison.Ordinal), connect.Describe());
        Assert.True(connect.PlainText.Contains("ray session: connected", StringComparison.Ordinal), connect.Describe());

        var call = await kernel.RunOkAsync("await ray.Call(PyFunction.Of<long>(\"math\", \"factorial\"), 10)");
        Assert.True(call.PlainText.Contains("3628800", StringComparison.Ordinal), call.Describe());

        var status = await kernel.RunOkAsync("#!ray status");
        Assert.True(status.PlainText.Contains("node alive address resources", StringComparison.Ordinal), status.Describe());
        Assert.True(status.PlainText.Contains($"CPU {Environment.ProcessorCount} {Environment.ProcessorCount}", StringComparison.Ordinal), status.Describe());

        var disconnect = await kernel.RunOkAsync("#!ray disconnect");
        Assert.True(disconnect.PlainText.Contains("Disconnected.", StringComparison.Ordinal), disconnect.Describe());
    }
}
