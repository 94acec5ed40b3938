using System.Xml.Linq;
using RayClient.Interactive.Tests.Infrastructure;

namespace RayClient.Interactive.Tests;

[Collection(PackedFeedCollection.Name)]
public sealed class PackageTests(PackedFeed feed)
{
    private static readonly TimeSpan s_runTimeout = TimeSpan.FromMinutes(6);

    [Theory]
    [InlineData("RayClient", "lib/net10.0/RayClient.dll")]
    [InlineData("RayClient.Server", "lib/net10.0/RayClient.Server.dll")]
    public void Pack_Package_HasMetadataReadmeDocsAndSymbols(string id, string assembly)
    {
        var entries = feed.Entries(id);
        Assert.Contains(assembly, entries);
        Assert.Contains(Path.ChangeExtension(assembly, ".xml"), entries); // XML docs
        Assert.Contains("README.md", entries);
        Assert.True(File.Exists(Path.Combine(feed.Feed, $"{id}.{feed.Version}.snupkg")), "symbols package");

        var nuspec = XDocument.Parse(feed.ReadEntry(id, $"{id}.nuspec"));
        string Field(string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value ?? "";
        Assert.Equal(id, Field("id"));
        Assert.Equal("Apache-2.0", Field("license"));
        Assert.Equal("README.md", Field("readme"));
        Assert.Contains("ray", Field("tags").Split(' '));
        Assert.False(string.IsNullOrWhiteSpace(Field("description")));
        var repository = nuspec.Descendants().First(e => e.Name.LocalName == "repository");
        Assert.StartsWith("https://", repository.Attribute("url")?.Value);
    }

    [Fact]
    public void Pack_ClientDependencies_LoadInNotebookHosts()
    {
        // .NET Interactive hosts load System.Reactive 6.0.x; a dependency on 7.x cannot load there.
        var nuspec = XDocument.Parse(feed.ReadEntry("RayClient", "RayClient.nuspec"));
        var reactive = nuspec.Descendants().First(e => e.Name.LocalName == "dependency" && e.Attribute("id")?.Value == "System.Reactive");
        Assert.StartsWith("6.0.", reactive.Attribute("version")!.Value);
        // And the server package does not hand users protoc build tooling.
        var server = feed.ReadEntry("RayClient.Server", "RayClient.Server.nuspec");
        Assert.DoesNotContain("Grpc.Tools", server);
    }

    [Fact]
    public async Task ConsoleSample_FromFeed_BuildsAndRunsARemoteCallOnTheEmbeddedServer()
    {
        var project = feed.CopySample("samples/console");
        var csproj = XDocument.Load(Path.Combine(project, "RayConsole.csproj"));
        var references = csproj.Descendants("PackageReference").ToDictionary(e => e.Attribute("Include")!.Value, e => e.Attribute("Version")!.Value);
        Assert.Equal(feed.Version, references["RayClient"]); // the sample names the version we ship
        Assert.Equal(feed.Version, references["RayClient.Server"]);
        Assert.DoesNotContain(feed.RepoRoot, File.ReadAllText(Path.Combine(project, "RayConsole.csproj")));

        var run = await ProcessRunner.DotnetAsync(["run"], project, feed.Environment, s_runTimeout);

        Assert.True(run.ExitCode == 0, run.Describe("dotnet run"));
        Assert.Contains("fibonacci(10) = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]", run.StandardOutput);
        Assert.Contains($"CPUs: {Environment.ProcessorCount}", run.StandardOutput);
        // Restored from the temp feed into the isolated cache, not from anywhere in the repo.
        Assert.True(File.Exists(Path.Combine(feed.PackageCache, "rayclient", feed.Version, $"rayclient.{feed.Version}.nupkg")));
    }

    [Fact]
    public async Task FileBasedApp_FromFeed_RunsWithDotnetRun()
    {
        var folder = feed.CopySample("samples/file-based");
        var app = File.ReadAllText(Path.Combine(folder, "app.cs"));
        Assert.Contains($"#:package RayClient@{feed.Version}", app);

        var run = await ProcessRunner.DotnetAsync(["run", "app.cs"], folder, feed.Environment, s_runTimeout);

        Assert.True(run.ExitCode == 0, run.Describe("dotnet run app.cs"));
        Assert.Contains("squares: [1, 4, 9, 16, 25, 36, 49, 64]", run.StandardOutput);
        Assert.Contains("sum: 204", run.StandardOutput);
    }
}
