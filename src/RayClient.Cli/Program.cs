using System.CommandLine;

namespace RayClient.Cli;

internal static class Program
{
    // Ctrl+C and SIGTERM cancel the command's token (it gets 5 s to finish): 'job logs --follow'
    // then says the job keeps running, as Ray's CLI leaves it running.
    private static Task<int> Main(string[] args) =>
        CliApp.BuildRootCommand(Console.Out, Console.Error).Parse(args)
            .InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(5) });
}
