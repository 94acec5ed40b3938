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

    [Fact]
    public async Task InterruptedCell_CancelsItsWait_SessionGoesOn_AndAPendingRefDisplaysWithoutBlocking()
    {
        using var kernel = new NotebookKernel();
        await kernel.RunOkAsync($"#i \"nuget: {feed.Feed}\"");
        await kernel.RunOkAsync($"#r \"nuget: RayClient.Interactive, {feed.Version}\"");
        await kernel.RunOkAsync("#!ray connect");

        // Displayed without await while it runs: "pending", at once, no exception.
        var started = System.Diagnostics.Stopwatch.StartNew();
        var pending = await kernel.RunOkAsync("var slow = ray.Call(PyFunction.Of<object?>(\"time\", \"sleep\"), 60);\nslow");
        Assert.True(pending.PlainText.Contains("pending", StringComparison.Ordinal), pending.Describe());
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(20), $"displaying a pending ref took {started.Elapsed}");

        var waiting = kernel.RunAsync("await ray.GetAllAsync(new[] { slow })");
        await kernel.WaitForOutputAsync("0 / 1 ready", TimeSpan.FromSeconds(60)); // the cell is waiting
        var interrupt = System.Diagnostics.Stopwatch.StartNew();
        await kernel.Kernel.SendAsync(new Microsoft.DotNet.Interactive.Commands.Cancel());
        var cancelled = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        // The cell ended as cancelled (not with some other failure), long before the 60 s task.
        Assert.True(cancelled.Failure?.Contains("cancel", StringComparison.OrdinalIgnoreCase) == true, cancelled.Describe());
        Assert.True(interrupt.Elapsed < TimeSpan.FromSeconds(20), $"the interrupt took {interrupt.Elapsed}");

        var after = await kernel.RunOkAsync("$\"{await ray.Call(PyFunction.Of<long>(\"math\", \"factorial\"), 5)} {ray.ConnectionState.Status}\"");
        Assert.True(after.PlainText.Contains("120 Connected", StringComparison.Ordinal), after.Describe());
        await kernel.RunOkAsync("#!ray disconnect");
    }
}
