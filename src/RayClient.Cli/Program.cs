using System.CommandLine;

namespace RayClient.Cli;

internal static class Program
{
    // ProcessTerminationTimeout = null: System.CommandLine would otherwise cancel on SIGINT/SIGTERM
    // and force the exit (code 130) after 2 s; 'start' handles the signals itself and stops cleanly.
    private static Task<int> Main(string[] args) =>
        CliApp.BuildRootCommand(Console.Out, Console.Error).Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
}
