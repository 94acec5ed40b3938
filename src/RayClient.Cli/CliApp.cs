using System.CommandLine;
using RayClient.Cli.Commands;

namespace RayClient.Cli;

/// <summary>Builds the <c>rayclient</c> command tree; tests invoke it with their own writers.</summary>
internal static class CliApp
{
    public static RootCommand BuildRootCommand(TextWriter output, TextWriter error)
    {
        var root = new RootCommand("rayclient: run Python tasks on Ray from .NET. 'demo' runs Ray's Fibonacci job example on the embedded server; 'start' serves the embedded server.");
        root.Subcommands.Add(DemoCommand.Create(output, error));
        root.Subcommands.Add(StartCommand.Create(output, error));
        return root;
    }
}
