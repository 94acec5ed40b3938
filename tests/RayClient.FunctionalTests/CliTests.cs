using RayClient.Cli;

namespace RayClient.FunctionalTests;

public sealed class CliTests
{
    [Fact]
    public async Task Demo_OnTheEmbeddedServer_PrintsNodesCpusAndResults()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CliApp.BuildRootCommand(output, error).Parse(["demo"]).InvokeAsync();

        var text = output.ToString();
        Assert.True(exit == 0, $"exit {exit}: {error}");
        var cpus = Environment.ProcessorCount;
        Assert.Contains("Nodes in the Ray cluster: 1", text);
        Assert.Contains($"CPUs in the Ray cluster: {cpus}", text);
        Assert.Contains($"[{string.Join(", ", Enumerable.Repeat("10", cpus))}]", text);
    }

    [Fact]
    public async Task Demo_UnreachableAddress_FailsWithAClearMessage()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CliApp.BuildRootCommand(output, error).Parse(["demo", "--address", "ray://127.0.0.1:1", "--connect-deadline", "2"]).InvokeAsync();

        Assert.Equal(1, exit);
        Assert.Contains("connection refused", error.ToString());
    }
}
