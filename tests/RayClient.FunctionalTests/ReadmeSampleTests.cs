using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using RayClient.Server;

namespace RayClient.FunctionalTests;

/// <summary>
/// The README's C# samples compile and run as written: every ```csharp block of README.md, in order,
/// is one program (as a .NET file-based app: implicit usings, nullable on), compiled with Roslyn and run
/// in its own process with <c>samples/</c> as working directory and RAY_ADDRESS naming an embedded server.
/// Notebook cells (<c>#r</c>, <c>#!ray</c>: not a C# program) are fenced <c>```c#</c> instead, and are run by the notebook tests.
/// </summary>
public sealed partial class ReadmeSampleTests
{
    // The global usings of Microsoft.NET.Sdk's ImplicitUsings, as a console project or `dotnet run app.cs` has them.
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    [Fact]
    public async Task ReadmeSamples_CompileAndRunAgainstTheEmbeddedServer()
    {
        var root = FindRepositoryRoot();
        var samples = Path.Combine(root, "samples");
        var readme = await File.ReadAllTextAsync(Path.Combine(root, "README.md"));
        // Each block keeps its README line numbers, so a compile error points at the README.
        var blocks = CSharpBlock().Matches(readme)
            .Select(m => $"#line {readme.AsSpan(0, m.Groups[1].Index).Count('\n') + 1} \"README.md\"\n{m.Groups[1].Value}")
            .ToList();
        Assert.True(blocks.Count >= 2, "README.md has no C# samples");
        Assert.True(Directory.Exists(samples), "samples/ is missing");

        // One file, blocks in order: a name defined twice or used undefined fails here, as it would for a reader.
        var program = string.Join("\n", blocks);
        var assemblyName = "readme-samples-" + Guid.NewGuid().ToString("N");
        var compilation = CSharpCompilation.Create(
            assemblyName,
            [CSharpSyntaxTree.ParseText(program, path: "README.md"), CSharpSyntaxTree.ParseText(ImplicitUsings, path: "ImplicitUsings.cs")],
            ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator).Select(p => MetadataReference.CreateFromFile(p)),
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));

        // Next to this test's assemblies, so the sample process finds RayClient and its dependencies as any app does
        // (Microsoft.Extensions.Logging.Abstractions comes from the ASP.NET Core shared framework the server uses).
        var dll = Path.Combine(AppContext.BaseDirectory, assemblyName + ".dll");
        var runtimeConfig = Path.Combine(AppContext.BaseDirectory, assemblyName + ".runtimeconfig.json");
        try
        {
            var emitted = compilation.Emit(dll);
            var problems = emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error || (d.Severity == DiagnosticSeverity.Warning && d.WarningLevel <= 1)).ToList();
            Assert.True(emitted.Success && problems.Count == 0, "The README's C# samples do not compile:\n" + string.Join("\n", problems));
            var framework = new System.Text.Json.Nodes.JsonObject { ["name"] = "Microsoft.AspNetCore.App", ["version"] = Environment.Version.ToString(3) };
            var config = new System.Text.Json.Nodes.JsonObject { ["runtimeOptions"] = new System.Text.Json.Nodes.JsonObject { ["tfm"] = "net10.0", ["framework"] = framework } };
            await File.WriteAllTextAsync(runtimeConfig, config.ToJsonString());

            await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2 });
            var (exit, output, error) = await RunAsync(dll, samples, server.Address, server.DashboardAddress);

            Assert.True(exit == 0, $"the samples exited with {exit}:\n{output}\n{error}");
            Assert.Contains("fib: 10, input.bin: 4096 bytes, MODE=prod, ready: ", output);
            Assert.Contains("nodes: 1, CPUs: 2", output);
            Assert.Equal(2, Regex.Matches(output, "a task finished: (20|25)").Count);
            Assert.Contains("counter: 1, then 6 after use_counter", output);
            Assert.Contains("Nodes in the Ray cluster: 1", output); // the Jobs sample: Ray's job example, its log tailed
            Assert.Contains("[10, 10]", output);
            Assert.Contains("succeeded: ", output, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            File.Delete(dll);
            File.Delete(runtimeConfig);
        }
    }

    private static async Task<(int Exit, string Output, string Error)> RunAsync(string dll, string workingDirectory, string address, string dashboardAddress)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add("exec");
        info.ArgumentList.Add(dll);
        info.Environment["RAY_ADDRESS"] = address;
        info.Environment["RAY_API_SERVER_ADDRESS"] = dashboardAddress;
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await error);
    }

    internal static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "README.md")) && File.Exists(Path.Combine(dir.FullName, "RayClient.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root (README.md and RayClient.sln) above {AppContext.BaseDirectory}.");
    }

    [GeneratedRegex(@"^```csharp\r?\n(.*?)^```", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex CSharpBlock();
}
