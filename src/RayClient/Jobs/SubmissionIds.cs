using System.Security.Cryptography;

namespace RayClient.Jobs;

/// <summary>
/// Submission ids in Ray's format (ray:python/ray/dashboard/modules/job/job_manager.py ::
/// generate_job_id): <c>raysubmit_</c> followed by 16 characters drawn independently from
/// <c>[A-Za-z0-9]</c> minus the look-alikes <c>I l o O 0</c> (57 symbols, about 93 bits).
/// </summary>
public static class SubmissionIds
{
    /// <summary>The prefix Ray gives generated ids.</summary>
    public const string Prefix = "raysubmit_";

    /// <summary>The 57 symbols Ray draws from.</summary>
    public const string Alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz123456789";

    private const int MaxLength = 255;

    /// <summary>A new id, e.g. <c>raysubmit_4LamXRuQpYdSMg7J</c>, from a cryptographic random source (as Ray's <c>SystemRandom</c>).</summary>
    public static string Generate() => Prefix + RandomNumberGenerator.GetString(Alphabet, 16);

    /// <summary>
    /// Checks a caller's id: it goes into URL paths, a log file name and an actor name, so an empty
    /// id, whitespace, control characters, <c>/</c>, <c>\</c> and ids over 255 characters are refused.
    /// </summary>
    /// <exception cref="ArgumentException">The id is not usable; the message says why.</exception>
    public static void Validate(string submissionId)
    {
        ArgumentNullException.ThrowIfNull(submissionId);
        if (submissionId.Length == 0)
        {
            throw new ArgumentException("The submission id is empty.", nameof(submissionId));
        }

        if (submissionId.Length > MaxLength)
        {
            throw new ArgumentException($"The submission id is {submissionId.Length} characters long; at most {MaxLength} are allowed.", nameof(submissionId));
        }

        foreach (var c in submissionId)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c) || c is '/' or '\\')
            {
                throw new ArgumentException(
                    $"The submission id '{submissionId}' contains {(c is '/' or '\\' ? $"'{c}'" : $"the character U+{(int)c:X4}")}; ids go into URLs and file names, use letters, digits, '-', '_' or '.'.",
                    nameof(submissionId));
            }
        }
    }

    /// <summary>Whether <paramref name="value"/> has the shape of an id Ray (or this client) generated.</summary>
    public static bool IsGenerated(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length != Prefix.Length + 16 || !value.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in value.AsSpan(Prefix.Length))
        {
            if (!Alphabet.Contains(c, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }
}
