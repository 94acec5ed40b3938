using System.Net;
using System.Text.RegularExpressions;
using RayClient.Interactive.Tests.Infrastructure;

namespace RayClient.Interactive.Tests;

/// <summary>
/// The notebooks in a real out-of-process host: dotnet-repl 0.3.259 (installed as a local tool),
/// `--run nb.ipynb --exit-after-run --output-format trx`, restoring from the packed feed. An
/// in-process kernel hides assembly-loading problems (the System.Reactive 7 one, for example); this does not.
/// </summary>
[Collection(PackedFeedCollection.Name)]
public sealed partial class ReplHostTests(PackedFeed feed)
{
    private const string ReplVersion = "0.3.259";
    private static readonly SemaphoreSlim s_install = new(1, 1);
    private static string? s_replDll;

    [Theory]
    [MemberData(nameof(NotebookTests.Notebooks), MemberType = typeof(NotebookTests))]
    public async Task Notebook_InDotnetRepl_EveryCellPasses(string name)
    {
        var repl = await InstallReplAsync();
        var work = Path.Combine(feed.Root, "work", "repl-" + Path.GetFileNameWithoutExtension(name));
        var temp = Path.Combine(work, "tmp");
        Directory.CreateDirectory(temp);
        File.Copy(Path.Combine(feed.RepoRoot, "notebooks", name), Path.Combine(work, name));
        var trx = Path.Combine(work, "result.trx");
        var environment = new Dictionary<string, string?>(feed.Environment)
        {
            ["TMPDIR"] = temp, // the kernel's restore projects live here, under the feed's nuget.config
        };

        // Run by the installed tool's entry assembly so its restores use the isolated package cache.
        var run = await ProcessRunner.DotnetAsync(
            [repl, "--run", name, "--exit-after-run", "--output-format", "trx", "--output-path", trx],
            work, environment, TimeSpan.FromMinutes(8));

        Assert.True(File.Exists(trx), run.Describe("dotnet repl"));
        var results = CellResult().Matches(await File.ReadAllTextAsync(trx))
            .Select(m => (Name: WebUtility.HtmlDecode(m.Groups[1].Value), Outcome: m.Groups[2].Value)).ToList();
        var cells = NotebookFile.Read(Path.Combine(feed.RepoRoot, "notebooks", name), out _);
        Assert.True(results.Count >= cells.Count, $"{results.Count} results for {cells.Count} code cells\n{run.Describe("dotnet repl")}");
        var failed = results.Where(r => r.Outcome != "Passed").ToList();
        Assert.True(failed.Count == 0, "failed cells:\n" + string.Join("\n", failed.Select(f => f.Name)) + "\n" + await File.ReadAllTextAsync(trx));
        Assert.True(run.ExitCode == 0, run.Describe("dotnet repl"));
    }

    private async Task<string> InstallReplAsync()
    {
        await s_install.WaitAsync();
        try
        {
            if (s_replDll is not null)
            {
                return s_replDll;
            }

            var tools = Path.Combine(feed.Root, "work", "tools");
            Directory.CreateDirectory(tools);
            // A local tool, installed into the user's cache (371 MB: not copied per run).
            var userCache = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = feed.UserPackageCache };
            var manifest = await ProcessRunner.DotnetAsync(["new", "tool-manifest"], tools, userCache, TimeSpan.FromMinutes(2));
            Assert.True(manifest.ExitCode == 0, manifest.Describe("dotnet new tool-manifest"));
            var install = await ProcessRunner.DotnetAsync(["tool", "install", "dotnet-repl", "--version", ReplVersion], tools, userCache, TimeSpan.FromMinutes(5));
            Assert.True(install.ExitCode == 0, install.Describe("dotnet tool install dotnet-repl"));
            s_replDll = Directory.GetFiles(Path.Combine(feed.UserPackageCache, "dotnet-repl", ReplVersion, "tools"), "dotnet-repl.dll", SearchOption.AllDirectories).Single();
            return s_replDll;
        }
        finally
        {
            s_install.Release();
        }
    }

    [GeneratedRegex("<UnitTestResult[^>]*testName=\"([^\"]*)\"[^>]*outcome=\"(\\w+)\"")]
    private static partial Regex CellResult();
}
