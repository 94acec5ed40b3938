using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;
using RayClient.Cli;

namespace RayClient.FunctionalTests;

/// <summary>The CLI is a .NET tool: <c>dotnet pack</c> makes a DotnetTool package whose command is <c>rayclient</c>, and it installs and runs.</summary>
public sealed class ToolPackageTests
{
    [Fact]
    public async Task Pack_CliProject_IsAnInstallableToolNamedRayclient()
    {
        var root = ReadmeSampleTests.FindRepositoryRoot();
        var work = Path.Combine(Path.GetTempPath(), "rayclient-tests", "pack-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            // --no-build: the test run already built the CLI in this configuration (it is a project reference).
            var configuration = typeof(CliApp).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
            var packages = Path.Combine(work, "packages");
            var pack = await RunAsync("dotnet", root, "pack", Path.Combine(root, "src", "RayClient.Cli", "RayClient.Cli.csproj"), "-c", configuration, "--no-build", "-o", packages, "-nologo");
            Assert.True(pack.Exit == 0, $"dotnet pack failed:\n{pack.Output}");

            var nupkg = Assert.Single(Directory.GetFiles(packages, "RayClient.Cli.*.nupkg"));
            using (var zip = ZipFile.OpenRead(nupkg))
            {
                var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
                Assert.Contains(nuspec.Descendants().Where(e => e.Name.LocalName == "packageType"), e => (string?)e.Attribute("name") == "DotnetTool");
                var settings = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith("/DotnetToolSettings.xml", StringComparison.Ordinal)).Open());
                var command = Assert.Single(settings.Descendants(), e => e.Name.LocalName == "Command");
                Assert.Equal("rayclient", (string?)command.Attribute("Name"));
                Assert.Equal("RayClient.Cli.dll", (string?)command.Attribute("EntryPoint"));
            }

            // Installs from that folder alone (no other feed) and answers as rayclient.
            var config = Path.Combine(work, "nuget.config");
            await File.WriteAllTextAsync(config, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration><packageSources><clear /><add key="local" value="{packages}" /></packageSources></configuration>
                """);
            var tools = Path.Combine(work, "tools");
            var install = await RunAsync("dotnet", work, "tool", "install", "RayClient.Cli", "--tool-path", tools, "--configfile", config);
            Assert.True(install.Exit == 0, $"dotnet tool install failed:\n{install.Output}");
            var help = await RunAsync(Path.Combine(tools, OperatingSystem.IsWindows() ? "rayclient.exe" : "rayclient"), work, "--help");
            Assert.Equal(0, help.Exit);
            Assert.Contains("rayclient [command] [options]", help.Output);
        }
        finally
        {
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<(int Exit, string Output)> RunAsync(string file, string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output + await error);
    }
}
