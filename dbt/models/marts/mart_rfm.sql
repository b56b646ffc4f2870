{#- One row per buyer: recency, frequency and monetary value, scored 1-5 (5 = best) by their
    percent rank among buyers (ties share the lower score), and a named segment. Frequency
    counts the UTC days with a purchase; recency is measured from the latest event in the
    lake. -#}
with events as (

    select * from {{ ref('int_events') }}

),

as_of as (

    select max(event_time) as as_of_time from events

),

buyers as (

    select
        user_id,
        max(event_time) as last_purchase_at,
        count(distinct event_date) as frequency,
        {{ exact_sum('price') }} as monetary_amount
    from events
    where event_type = 'purchase'
    group by user_id

),

measured as (

    select
        buyers.*,
        cast(floor(
            ({{ epoch_us('as_of.as_of_time') }} - {{ epoch_us('buyers.last_purchase_at') }})
            / 86400000000
        ) as bigint) as recency_days
    from buyers
    cross join as_of

),

scored as (

    select
        *,
        {{ rank_score('recency_days desc') }} as r_score,
        {{ rank_score('frequency') }} as f_score,
        {{ rank_score('monetary_amount') }} as m_score
    from measured

),

final as (

    select
        user_id,
        last_purchase_at,
        recency_days,
        frequency,
        monetary_amount,
        r_score,
        f_score,
        m_score,
        cast(r_score as string) || cast(f_score as string) || cast(m_score as string)
            as rfm_score,
        case
            when r_score >= 4 and f_score >= 4 then 'champions'
            when r_score >= 3 and f_score >= 4 then 'loyal'
            when r_score >= 4 and f_score >= 2 then 'potential_loyalist'
            when r_score >= 4 then 'new_customer'
            when r_score <= 2 and f_score >= 4 then 'cannot_lose'
            when r_score <= 2 and f_score >= 2 then 'at_risk'
            when r_score = 1 then 'lost'
            when r_score = 2 then 'hibernating'
            else 'needs_attention'
        end as segment
    from scored

)

select * from final
