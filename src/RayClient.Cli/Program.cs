namespace RayClient.Cli;

internal static class Program
{
    private static Task<int> Main(string[] args) =>
        CliApp.BuildRootCommand(Console.Out, Console.Error).Parse(args).InvokeAsync();
}
