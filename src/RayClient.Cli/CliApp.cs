using System.CommandLine;
using RayClient.Cli.Commands;

namespace RayClient.Cli;

/// <summary>Builds the <c>rayclient</c> command tree; tests invoke it with their own writers.</summary>
internal static class CliApp
{
    /// <summary>The command users type (the .NET tool's <c>ToolCommandName</c>), shown in usage text whatever the host process is called.</summary>
    public const string ToolName = "rayclient";

    public static Command BuildRootCommand(TextWriter output, TextWriter error) => BuildRootCommand(output, error, null);

    /// <summary>
    /// The command tree, with the Jobs commands' poll interval substituted (tests). The environment
    /// (RAY_API_SERVER_ADDRESS, RAY_JOB_HEADERS, RAY_AUTH_TOKEN, …) is always the process's own, read
    /// by the Jobs client as for any user; tests that vary it run the tool as a child process.
    /// </summary>
    internal static Command BuildRootCommand(TextWriter output, TextWriter error, TimeSpan? pollInterval)
    {
        // A RootCommand names itself after the host executable (RayClient.Cli under `dotnet run`,
        // testhost in tests); a plain command with the help and version options reads "rayclient" everywhere.
        var root = new Command(ToolName, "rayclient: run Python tasks on Ray from .NET. 'demo' runs Ray's Fibonacci job example on the embedded server; 'start' serves the embedded server; 'job' submits and manages Ray jobs.")
        {
            Options = { new System.CommandLine.Help.HelpOption(), new VersionOption() },
        };
        root.Subcommands.Add(DemoCommand.Create(output, error));
        root.Subcommands.Add(StartCommand.Create(output, error));
        root.Subcommands.Add(JobCommand.Create(output, error, pollInterval));
        return root;
    }

    /// <summary>
    /// Exit code of a usage error (unknown command or option, missing argument, bad value), as Ray's
    /// click-based <c>ray</c> CLI (click's <c>UsageError.exit_code</c>); failures while running exit with 1.
    /// </summary>
    public const int UsageErrorExitCode = 2;

    /// <summary>Runs the command line; a usage error (exit code 2) or a failure (exit code 1) is one <c>error:</c> line on stderr, never a stack trace.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var parse = BuildRootCommand(output, error).Parse(args);
        if (parse.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
        {
            // One line per usage error (the first), as for every other failure; --help shows the usage.
            await error.WriteLineAsync($"error: {parse.Errors[0].Message} (see '{ToolName} {string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')))} --help')".Replace("  --help", " --help", StringComparison.Ordinal)).ConfigureAwait(false);
            return UsageErrorExitCode;
        }

        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration
            {
                Output = output,
                Error = error,
                EnableDefaultExceptionHandler = false,
                // System.CommandLine would otherwise cancel on SIGINT/SIGTERM and force the exit (code 130)
                // after 2 s; the commands that outlive a signal ('start', following a job's logs) take it
                // through TerminationSignals and finish cleanly.
                ProcessTerminationTimeout = null,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (CliErrors.IsUserFacing(ex))
        {
            await CliErrors.WriteAsync(error, ex).ConfigureAwait(false);
            return 1;
        }
    }
}
