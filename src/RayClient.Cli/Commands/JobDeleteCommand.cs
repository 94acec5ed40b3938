using System.CommandLine;

namespace RayClient.Cli.Commands;

/// <summary><c>rayclient job delete JOB_ID</c>: deletes a finished job's record; a job that has not ended is an error (exit code 1).</summary>
internal static class JobDeleteCommand
{
    public static Command Create(JobCli cli)
    {
        var jobId = new Argument<string>("job-id") { Description = "The submission id of the job." };
        var command = cli.AddCommonOptions(new Command("delete", "Deletes a stopped job and its associated data from memory (not its logs on disk)."));
        command.Arguments.Add(jobId);
        command.SetAction((parse, cancellationToken) => cli.RunAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse).ConfigureAwait(false);
            var id = parse.GetValue(jobId)!;
            await client.DeleteJobAsync(id, cancellationToken).ConfigureAwait(false);
            await cli.Output.WriteLineAsync($"Job '{id}' deleted successfully").ConfigureAwait(false);
            return 0;
        }));
        return command;
    }
}
