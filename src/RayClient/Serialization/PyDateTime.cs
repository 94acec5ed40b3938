namespace RayClient.Serialization;

/// <summary>
/// The <c>datetime</c> module's pickles: <c>datetime(bytes10[, tzinfo])</c>, <c>date(bytes4)</c>,
/// <c>time(bytes6)</c>, <c>timedelta(days, seconds, microseconds)</c> and <c>timezone(offset[, name])</c>,
/// as CPython's <c>datetime.__reduce_ex__</c> writes them. Python keeps microseconds, so the
/// sub-microsecond part of .NET ticks is dropped on the way out.
/// </summary>
internal static class PyDateTime
{
    private const long MicrosecondsPerDay = 86_400_000_000L;

    public static void Write(PickleWriter writer, object value)
    {
        switch (value)
        {
            case DateTime { Kind: DateTimeKind.Local } local:
                WriteDateTime(writer, new DateTimeOffset(local));
                break;
            case DateTime dateTime:
                writer.WriteGlobal("datetime", "datetime");
                if (dateTime.Kind == DateTimeKind.Utc)
                {
                    writer.WriteCall([DateTimeState(dateTime), new TimeZoneValue(TimeSpan.Zero)]);
                }
                else
                {
                    writer.WriteCall([DateTimeState(dateTime)]);
                }

                break;
            case DateTimeOffset offset:
                WriteDateTime(writer, offset);
                break;
            case DateOnly date:
                writer.WriteGlobal("datetime", "date");
                writer.WriteCall([new byte[] { (byte)(date.Year >> 8), (byte)date.Year, (byte)date.Month, (byte)date.Day }]);
                break;
            case TimeOnly time:
                writer.WriteGlobal("datetime", "time");
                var us = (int)(time.Ticks % TimeSpan.TicksPerSecond / 10);
                writer.WriteCall([new byte[] { (byte)time.Hour, (byte)time.Minute, (byte)time.Second, (byte)(us >> 16), (byte)(us >> 8), (byte)us }]);
                break;
            case TimeSpan span:
                WriteTimedelta(writer, span);
                break;
            case TimeZoneValue zone:
                writer.WriteGlobal("datetime", "timezone");
                writer.WriteCall([zone.Offset]);
                break;
            default:
                throw new ArgumentException("not a date/time value", nameof(value));
        }
    }

    private static void WriteDateTime(PickleWriter writer, DateTimeOffset value)
    {
        writer.WriteGlobal("datetime", "datetime");
        writer.WriteCall([DateTimeState(value.DateTime), new TimeZoneValue(value.Offset)]);
    }

    private static void WriteTimedelta(PickleWriter writer, TimeSpan span)
    {
        var totalUs = Math.DivRem(span.Ticks, 10, out var rest);
        if (rest < 0)
        {
            totalUs--; // floor, as Python normalises toward negative days
        }

        var days = Math.DivRem(totalUs, MicrosecondsPerDay, out var remainder);
        if (remainder < 0)
        {
            days--;
            remainder += MicrosecondsPerDay;
        }

        writer.WriteGlobal("datetime", "timedelta");
        writer.WriteCall([days, remainder / 1_000_000, remainder % 1_000_000]);
    }

    private static byte[] DateTimeState(DateTime value)
    {
        var us = (int)(value.Ticks % TimeSpan.TicksPerSecond / 10);
        return
        [
            (byte)(value.Year >> 8), (byte)value.Year, (byte)value.Month, (byte)value.Day,
            (byte)value.Hour, (byte)value.Minute, (byte)value.Second,
            (byte)(us >> 16), (byte)(us >> 8), (byte)us,
        ];
    }

    // ------------------------------------------------------------------------------------------
    // Reading (called by the unpickler for the datetime globals; false = leave it a PyObject)
    // ------------------------------------------------------------------------------------------

    public static bool TryTimedelta(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count is < 1 or > 3 || !TryLong(args, 0, out var days) || !TryLong(args, 1, out var seconds) || !TryLong(args, 2, out var us))
        {
            return false;
        }

        try
        {
            result = TimeSpan.FromTicks(checked((((days * 86_400) + seconds) * 1_000_000 + us) * 10));
            return true;
        }
        catch (OverflowException)
        {
            return false; // beyond TimeSpan's ±10.6 million days
        }
    }

    public static bool TryDateTime(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count is < 1 or > 2 || !TryState(args[0], 10, out var s))
        {
            return false;
        }

        try
        {
            var us = (s[7] << 16) | (s[8] << 8) | s[9];
            var local = new DateTime((s[0] << 8) | s[1], s[2] & 0x7f, s[3], s[4], s[5], s[6], DateTimeKind.Unspecified).AddTicks(us * 10L);
            if (args.Count == 1 || args[1] is null)
            {
                result = local;
                return true;
            }

            if (!TryOffset(args[1], out var offset))
            {
                return false; // a tzinfo we cannot evaluate (zoneinfo, pytz): keep the PyObject
            }

            result = new DateTimeOffset(local, offset);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    public static bool TryDate(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count != 1 || !TryState(args[0], 4, out var s))
        {
            return false;
        }

        try
        {
            result = new DateOnly((s[0] << 8) | s[1], s[2], s[3]);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    public static bool TryTime(PyTuple args, out object? result)
    {
        result = null;
        if (args.Count is < 1 or > 2 || (args.Count == 2 && args[1] is not null) || !TryState(args[0], 6, out var s))
        {
            return false;
        }

        try
        {
            var us = (s[3] << 16) | (s[4] << 8) | s[5];
            result = new TimeOnly(s[0] & 0x7f, s[1], s[2]).Add(TimeSpan.FromTicks(us * 10L));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static bool TryOffset(object? tz, out TimeSpan offset)
    {
        offset = default;
        if (tz is PyObject { Class: { Module: "datetime", Name: "timezone" } } zone && zone.Args.Count >= 1 && zone.Args[0] is TimeSpan span)
        {
            offset = span;
            return offset > TimeSpan.FromHours(-14) && offset < TimeSpan.FromHours(14);
        }

        return false;
    }

    private static bool TryState(object? value, int length, out byte[] state)
    {
        state = value switch
        {
            byte[] bytes => bytes,
            string latin1 when latin1.Length == length => System.Text.Encoding.Latin1.GetBytes(latin1), // Python 2 str state
            _ => [],
        };
        return state.Length == length;
    }

    private static bool TryLong(PyTuple args, int index, out long value)
    {
        value = 0;
        if (index >= args.Count)
        {
            return true; // missing trailing arguments default to 0
        }

        switch (args[index])
        {
            case int i:
                value = i;
                return true;
            case long l:
                value = l;
                return true;
            default:
                return false;
        }
    }

    /// <summary>A <c>datetime.timezone</c> to write (only used inside the writer).</summary>
    internal sealed record TimeZoneValue(TimeSpan Offset);
}
