-- Daily KPIs, products, the funnel and the category slots count the same revenue and purchases.
with totals as (

    select 'daily_kpis' as mart, sum(revenue) as revenue, sum(purchases) as purchases
    from {{ ref('mart_daily_kpis') }}
    union all
    select 'product_performance', sum(revenue_amount), sum(purchases)
    from {{ ref('mart_product_performance') }}
    union all
    select 'funnel', sum(revenue_amount), sum(purchases) from {{ ref('mart_funnel') }}
    union all
    select 'category_time by hour', sum(revenue_amount), sum(purchases)
    from {{ ref('mart_category_time') }} where slot_kind = 'hour'

)

select *
from totals
where abs(revenue - (select revenue from totals where mart = 'daily_kpis')) > 0.005
   or purchases <> (select purchases from totals where mart = 'daily_kpis')
