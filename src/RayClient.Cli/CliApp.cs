using System.CommandLine;
using RayClient.Cli.Commands;

namespace RayClient.Cli;

/// <summary>Builds the <c>rayclient</c> command tree; tests invoke it with their own writers.</summary>
internal static class CliApp
{
    public static RootCommand BuildRootCommand(TextWriter output, TextWriter error) => BuildRootCommand(output, error, null, null);

    /// <summary>The command tree, with the environment the Jobs commands read and their poll interval substituted (tests).</summary>
    internal static RootCommand BuildRootCommand(TextWriter output, TextWriter error, Func<string, string?>? environment, TimeSpan? pollInterval)
    {
        var root = new RootCommand("rayclient: run Python tasks on Ray from .NET. 'demo' runs Ray's Fibonacci job example on the embedded server; 'start' serves the embedded server; 'job' submits and manages Ray jobs.");
        root.Subcommands.Add(DemoCommand.Create(output, error));
        root.Subcommands.Add(StartCommand.Create(output, error));
        root.Subcommands.Add(JobCommand.Create(output, error, environment, pollInterval));
        return root;
    }
}
