using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text.RegularExpressions;

namespace RayClient.Interactive.Tests.Infrastructure;

/// <summary>
/// Packs RayClient's packages once per test run into a folder feed under a temp directory, with a
/// nuget.config there that lists that feed plus the normal source, and a package cache of its own
/// (NUGET_PACKAGES), so what the tests restore is exactly what was packed and nothing a previous
/// run left in the user's cache. Every consumer (console project, file-based app, scripts,
/// notebooks) runs in a folder under <see cref="Root"/>, as a user's project outside the repo.
/// </summary>
public sealed partial class PackedFeed : IAsyncLifetime
{
    private static readonly TimeSpan s_packTimeout = TimeSpan.FromMinutes(8);

    public string RepoRoot { get; } = FindRepoRoot();

    public string Root { get; private set; } = "";

    public string Feed => Path.Combine(Root, "feed");

    public string PackageCache => Path.Combine(Root, "packages");

    /// <summary>The version every package was packed with (the repo's VersionPrefix).</summary>
    public string Version { get; private set; } = "";

    public TimeSpan PackTime { get; private set; }

    /// <summary>The user's package cache (where tools the tests install live), before the override.</summary>
    public string UserPackageCache { get; private set; } = "";

    /// <summary>Environment for child processes: the isolated package cache.</summary>
    public IReadOnlyDictionary<string, string?> Environment => new Dictionary<string, string?>
    {
        ["NUGET_PACKAGES"] = PackageCache,
        ["RAY_ADDRESS"] = null,
    };

    public string Configuration { get; } =
        typeof(PackedFeed).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";

    public async Task InitializeAsync()
    {
        Root = Directory.CreateTempSubdirectory("rayclient-feed-").FullName;
        UserPackageCache = System.Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // In-process kernels restore with this process's environment: the same isolated cache.
        System.Environment.SetEnvironmentVariable("NUGET_PACKAGES", PackageCache);
        Directory.CreateDirectory(Feed);
        Directory.CreateDirectory(PackageCache);
        // A user's nuget.config: the local feed next to the normal source (inherited from the
        // user-level config), found by every restore that runs in a folder under Root.
        await File.WriteAllTextAsync(Path.Combine(Root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="rayclient-local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);

        var started = Stopwatch.StartNew();
        var pack = await ProcessRunner.DotnetAsync(
            // Built in an artifacts folder of its own (RAYCLIENT_ARTIFACTS, Directory.Build.props): restoring
            // into the isolated package cache must not rewrite the repo's obj/ while other test
            // projects build from it in parallel (it did: their compile then named files of this cache).
            ["pack", Path.Combine(RepoRoot, "tests", "RayClient.Interactive.Tests", "packages.slnf"), "-c", Configuration, "-o", Feed, "-p:ContinuousIntegrationBuild=true", $"-p:RAYCLIENT_ARTIFACTS={Path.Combine(Root, "artifacts")}"],
            RepoRoot, environment: null, s_packTimeout);
        PackTime = started.Elapsed;
        if (pack.ExitCode != 0)
        {
            throw new InvalidOperationException(pack.Describe("dotnet pack"));
        }

        var client = Directory.GetFiles(Feed, "RayClient.*.nupkg").Select(Path.GetFileName)
            .Select(name => VersionPattern().Match(name!)).FirstOrDefault(m => m.Success)
            ?? throw new InvalidOperationException($"dotnet pack made no RayClient package:\n{pack.StandardOutput}");
        Version = client.Groups[1].Value;
    }

    public string PackagePath(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    /// <summary>Entries of a packed package, as NuGet will lay them out.</summary>
    public IReadOnlyList<string> Entries(string id)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        return zip.Entries.Select(e => e.FullName).ToList();
    }

    public string ReadEntry(string id, string entry)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        using var reader = new StreamReader(zip.GetEntry(entry)!.Open());
        return reader.ReadToEnd();
    }

    /// <summary>Copies a sample folder of the repo to a fresh folder under <see cref="Root"/>.</summary>
    public string CopySample(string relativePath)
    {
        var source = Path.Combine(RepoRoot, relativePath);
        var target = Path.Combine(Root, "work", Path.GetFileName(relativePath) + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            if (relative.StartsWith("bin", StringComparison.Ordinal) || relative.StartsWith("obj", StringComparison.Ordinal))
            {
                continue;
            }

            var destination = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }

        return target;
    }

    public Task DisposeAsync()
    {
        if (Root.Length > 0)
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return Task.CompletedTask;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RayClient.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("RayClient.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^RayClient\.(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.nupkg$")]
    private static partial Regex VersionPattern();
}

[CollectionDefinition(Name)]
public sealed class PackedFeedCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
