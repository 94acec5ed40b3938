using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;

namespace RayClient.Interactive.Tests.Infrastructure;

/// <summary>dotnet-script's globals: the arguments after <c>--</c>.</summary>
public sealed class ScriptGlobals
{
    public IList<string> Args { get; init; } = [];
}

/// <summary>
/// Runs .csx files on Roslyn scripting (the engine dotnet-script runs on), with a resolver for
/// <c>#r "nuget: Id, Version"</c> that restores the package from the packed feed (a generated
/// project restored and built under the feed's root, so its nuget.config applies) and references
/// every runtime assembly the package brings.
/// </summary>
public sealed partial class ScriptRunner(PackedFeed feed)
{
    private static readonly TimeSpan s_restoreTimeout = TimeSpan.FromMinutes(5);

    public async Task<(object? ReturnValue, string Output)> RunAsync(string path, IList<string> args)
    {
        var code = await File.ReadAllTextAsync(path);
        // Roslyn binds one assembly per #r directive, so (as dotnet-script does) the package's
        // other assemblies are added to the options up front and the directive binds the package's own.
        var resolver = new NuGetResolver(feed);
        var packageAssemblies = NuGetDirective().Matches(code)
            .SelectMany(m => resolver.Restore(m.Groups[1].Value, m.Groups[2].Value))
            .ToList();
        var options = ScriptOptions.Default
            .AddReferences(packageAssemblies)
            .WithFilePath(path)
            .WithMetadataResolver(resolver)
            .WithImports("System", "System.IO", "System.Linq", "System.Collections.Generic", "System.Threading.Tasks")
            .WithReferences(typeof(Console).Assembly, typeof(Enumerable).Assembly);
        var output = new StringWriter();
        var original = Console.Out;
        Console.SetOut(output); // the test collection runs one test at a time
        try
        {
            var state = await CSharpScript.RunAsync(code, options, new ScriptGlobals { Args = args });
            return (state.ReturnValue, output.ToString());
        }
        finally
        {
            Console.SetOut(original);
        }
    }

    private sealed partial class NuGetResolver(PackedFeed feed) : MetadataReferenceResolver
    {
        private static readonly ConcurrentDictionary<string, ImmutableArray<PortableExecutableReference>> s_restored = new();
        private readonly ScriptMetadataResolver _files = ScriptMetadataResolver.Default;

        public override bool Equals(object? other) => other is NuGetResolver;

        public override int GetHashCode() => 1;

        public override bool ResolveMissingAssemblies => _files.ResolveMissingAssemblies;

        public override PortableExecutableReference? ResolveMissingAssembly(MetadataReference definition, AssemblyIdentity referenceIdentity) =>
            _files.ResolveMissingAssembly(definition, referenceIdentity);

        public override ImmutableArray<PortableExecutableReference> ResolveReference(string reference, string? baseFilePath, MetadataReferenceProperties properties)
        {
            var match = NuGetReference().Match(reference);
            if (!match.Success)
            {
                return _files.ResolveReference(reference, baseFilePath, properties);
            }

            var id = match.Groups[1].Value;
            var version = match.Groups[2].Value;
            var own = Restore(id, version).Where(r => Path.GetFileNameWithoutExtension(r.FilePath) == id).ToList();
            return own.Count == 1 ? [own[0]] : [];
        }

        public ImmutableArray<PortableExecutableReference> Restore(string id, string version) =>
            s_restored.GetOrAdd($"{feed.Root}|{id}|{version}", _ => RestoreNow(id, version));

        private ImmutableArray<PortableExecutableReference> RestoreNow(string id, string version)
        {
            var project = Path.Combine(feed.Root, "script-references", $"{id}.{version}");
            Directory.CreateDirectory(project);
            File.WriteAllText(Path.Combine(project, "refs.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <TargetFramework>net10.0</TargetFramework>
                    <CopyLocalLockFileAssemblies>true</CopyLocalLockFileAssemblies>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="{id}" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            var output = Path.Combine(project, "out");
            var build = ProcessRunner.DotnetAsync(["build", "-o", output], project, feed.Environment, s_restoreTimeout).GetAwaiter().GetResult();
            if (build.ExitCode != 0)
            {
                throw new InvalidOperationException(build.Describe($"restoring {id} {version}"));
            }

            return [.. Directory.GetFiles(output, "*.dll")
                .Where(dll => !Path.GetFileName(dll).Equals("refs.dll", StringComparison.Ordinal))
                .Select(dll => MetadataReference.CreateFromFile(dll))];
        }

        [GeneratedRegex(@"^nuget:\s*([A-Za-z0-9_.-]+)\s*,\s*([0-9A-Za-z.+-]+)\s*$")]
        private static partial Regex NuGetReference();
    }

    [GeneratedRegex(@"^#r\s+""nuget:\s*([A-Za-z0-9_.-]+)\s*,\s*([0-9A-Za-z.+-]+)\s*""", RegexOptions.Multiline)]
    private static partial Regex NuGetDirective();
}
