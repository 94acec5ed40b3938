using System.CommandLine;
using System.Text.Json;
using RayClient.Jobs;

namespace RayClient.Cli.Commands;

/// <summary>
/// <c>rayclient job list [--format table|json]</c>: every job the cluster knows. Ray prints a Python
/// repr; this prints a table, or the REST API's JSON with <c>--format json</c>.
/// </summary>
internal static class JobListCommand
{
    public static Command Create(JobCli cli)
    {
        var format = new Option<string>("--format") { Description = "table (default) or json.", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "json");
        var command = cli.AddCommonOptions(new Command("list", "Lists all jobs and their information."));
        command.Options.Add(format);
        command.SetAction((parse, cancellationToken) => cli.RunAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse).ConfigureAwait(false);
            var jobs = await client.ListJobsAsync(cancellationToken).ConfigureAwait(false);
            if (parse.GetValue(format) == "json")
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(jobs.ToList(), CliJsonContext.Default.ListJobDetails)).ConfigureAwait(false);
                return 0;
            }

            var rows = jobs.Select(j => new[]
            {
                j.SubmissionId ?? "-",
                j.JobId ?? "-",
                j.Type == JobType.Submission ? "SUBMISSION" : "DRIVER",
                j.Status.ToWireName(),
                JobCli.FormatTime(j.StartTime),
                JobCli.FormatTime(j.EndTime),
                j.Entrypoint.Length > 60 ? j.Entrypoint[..57] + "..." : j.Entrypoint,
            }).ToList();
            string[] header = ["SUBMISSION_ID", "JOB_ID", "TYPE", "STATUS", "START_TIME", "END_TIME", "ENTRYPOINT"];
            var widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
            await cli.Output.WriteLineAsync(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd()).ConfigureAwait(false);
            foreach (var row in rows)
            {
                await cli.Output.WriteLineAsync(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd()).ConfigureAwait(false);
            }

            return 0;
        }));
        return command;
    }
}
